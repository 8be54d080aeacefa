// The counter catalogue: every packet counter the daemon keeps, by name and meaning, in one order. The
// dataplane builds its counter enum from it (dataplane/counters.hpp); `stats` replies carry the names, and
// portcullisctl prints the meanings. Part of the control protocol: a name here is a key in `stats` replies.
#pragma once

#include <array>
#include <cstddef>

namespace portcullis {

#define PORTCULLIS_COUNTERS(X)                                                                               \
    X(rx_inside, "frames received on the inside (rack) port")                                                \
    X(rx_outside, "frames received on the outside (upstream) port")                                          \
    X(fwd_outbound, "frames forwarded inside -> outside")                                                    \
    X(fwd_inbound, "frames forwarded outside -> inside")                                                     \
    X(pass_unmanaged, "SMTP-port TCP from sources outside managed_prefixes, passed untracked")               \
    X(pass_relay, "SMTP-port TCP to a relay host, passed (tracked, relay limits)")                           \
    X(pass_approved, "blocked-port TCP from an approved source, passed (tracked, limited)")                  \
    X(pass_open, "open-port (submission) TCP from a managed source, passed (tracked, limited)")              \
    X(pass_client_rst, "blocked-port TCP RST from an unapproved source, passed (harmless)")                  \
    X(refused_unapproved, "blocked-port TCP from a managed, unapproved source, refused")                     \
    X(refused_unapproved_syn, "of which connection attempts (SYN)")                                          \
    X(rst_sent, "TCP RSTs sent back to refused clients")                                                     \
    X(smtp_synack_sent, "action smtp: SYN-ACKs with a cookie sent to refused clients")                       \
    X(smtp_reply_sent, "action smtp: SMTP reply lines (with FIN) sent to refused clients")                   \
    X(smtp_finack_sent, "action smtp: ACKs of the client's FIN after the reply")                             \
    X(smtp_quiet, "action smtp: valid segments needing no answer (ACK of our FIN)")                          \
    X(smtp_forged, "action smtp: segments acknowledging no valid cookie, ignored")                           \
    X(dropped_refused, "refused segments dropped (action drop, or no room to answer)")                       \
    X(dropped_fragment_policed, "fragmented TCP to an SMTP port from a managed source, dropped")             \
    X(flows_opened, "SMTP connections admitted and tracked")                                                 \
    X(flows_half_open, "SYNs to SMTP ports tracked as half-open connections (no source state yet)")          \
    X(syn_stateless,                                                                                         \
      "SYNs to SMTP ports forwarded with no entry: the table is 3/4 full (entry made at the SYN-ACK)")       \
    X(flows_half_open_at_synack, "half-open connections whose entry was made at the server's SYN-ACK")       \
    X(flows_closed, "tracked SMTP connections closed by FINs or a RST")                                      \
    X(flows_expired_half_open, "tracked SMTP connections released by the half-open timeout")                 \
    X(flows_expired_established, "tracked SMTP connections released by the idle timeout")                    \
    X(flows_expired_closing, "tracked SMTP connections released by the closing timeout")                     \
    X(flows_unknown_reset, "segments of SMTP connections with no record (mid-stream), reset both ways")      \
    X(candidates_evicted,                                                                                    \
      "SMTP sessions found on other ports ended unconfirmed: more than a quarter of the inspector pool")     \
    X(flows_early_dropped, "unconfirmed entries (half-open, candidates) dropped to make room (table full)")  \
    X(half_open_capped, "dropped: SYNs from a source over max_half_open_per_source, table under pressure")   \
    X(refused_at_handshake, "connections ended at the handshake: over a limit by then (counted by reason)")  \
    X(source_slots_reclaimed, "per-source slots holding only an idle source's daily count, taken over")      \
    X(tcp_bad_checksum, "dropped: tracked SMTP segments with a wrong IPv4 header or TCP checksum")           \
    X(tcp_signed, "dropped: tracked SMTP segments with a TCP MD5/AO signature the server cannot check")      \
    X(tcp_ttl_low, "dropped: client segments with a lower TTL/hop limit than their connection's SYN")        \
    X(tcp_paws, "dropped: client segments with an older TCP timestamp than the last (PAWS)")                 \
    X(tcp_out_of_order, "dropped: client data ahead of the next in-order byte (resent, then read)")          \
    X(tcp_beyond_window, "dropped: client data past the server's receive window")                            \
    X(tcp_unconfirmed, "dropped: client segments of no handshake the gateway saw the server answer")         \
    X(tcp_server_out_of_order,                                                                               \
      "dropped: server data ahead of the next in-order byte of a session being read")                        \
    X(tcp_rst_ignored, "client RSTs not at the next sequence number: forwarded, connection kept (RFC 5961)") \
    X(tcp_syn_data_stripped, "SYNs to SMTP ports with data (TCP Fast Open): data removed, sent again later") \
    X(refusals,                                                                                              \
      "refusals: connection attempts refused and sessions ended (monitor: would be), one event each")        \
    X(refusal_unapproved, "of which: from a managed source not approved for the port")                       \
    X(refusal_concurrency, "of which: over the source's concurrency limit")                                  \
    X(refusal_rate, "of which: over the source's connection rate")                                           \
    X(refusal_daily, "of which: over the source's daily volume")                                             \
    X(refusal_busy, "of which: no room to track the connection (flow or source table full, unknown flow)")   \
    X(refusal_payload, "of which: for what the session said (EHLO, MAIL FROM, a rule, unreadable)")          \
    X(refused_concurrency, "new SMTP connections refused: over the source's concurrency limit")              \
    X(refused_rate, "new SMTP connections refused: over the source's connection rate")                       \
    X(refused_daily, "new SMTP connections refused: over the source's daily volume")                         \
    X(flow_table_full, "new SMTP connections refused: the worker's flow table is full")                      \
    X(source_table_full, "new SMTP connections refused: no per-source slot free")                            \
    X(inspect_flows, "SMTP sessions whose client commands were read")                                        \
    X(inspect_segments, "client segments read by the inspection")                                            \
    X(inspect_server_segments, "server segments read by the inspection (replies)")                           \
    X(inspect_ehlo, "EHLO/HELO commands read")                                                               \
    X(inspect_mail_from, "MAIL FROM commands read")                                                          \
    X(inspect_ended_starttls, "inspections ended at STARTTLS the server accepted (220)")                     \
    X(inspect_ended_tls, "inspections ended at implicit TLS the server answered in TLS")                     \
    X(inspect_ended_quit, "inspections ended at QUIT the server accepted (221)")                             \
    X(inspect_bodies, "message bodies (DATA answered 354), BDAT chunks passed over")                         \
    X(inspect_ended_budget, "inspections ended after inspect_bytes of commands")                             \
    X(inspect_ended_gap, "inspections ended at a sequence gap (a segment lost or reordered)")                \
    X(inspect_ended_unreadable, "inspections ended unreadable, the session need not be read")                \
    X(inspect_overlong_lines, "command lines longer than the 1024 bytes kept (read by those)")               \
    X(inspect_pool_empty, "SMTP sessions not inspected: every inspection slot in use")                       \
    X(inspect_no_stream, "Hyperscan stream errors (rules not applied to that session)")                      \
    X(inspect_rule_counted, "matches of count-only rules")                                                   \
    X(inspect_remote_refusals,                                                                               \
      "5xx replies from receivers to inspected sessions (per source: show, events)")                         \
    X(inspect_unreadable_budget, "unreadable: over inspect_bytes of commands in a transaction")              \
    X(inspect_unreadable_pool_full, "unreadable: no inspection slot free")                                   \
    X(inspect_unreadable_gap, "unreadable: a client sequence gap (a segment lost or reordered)")             \
    X(inspect_unreadable_server_gap, "unreadable: a server sequence gap (replies lost)")                     \
    X(inspect_unreadable_desync, "unreadable: server replies that pair with no command")                     \
    X(inspect_unreadable_overlong, "unreadable: a line too long, or cut inside its name")                    \
    X(inspect_unreadable_protocol, "unreadable: commands before the reply to STARTTLS/DATA")                 \
    X(inspect_unreadable_tls, "unreadable: TLS framing broken, or a cleartext answer to TLS")                \
    X(smtp_other_port, "SMTP sessions found by their commands on a port that is not an SMTP port")           \
    X(refused_payload, "SMTP sessions refused for what they said (EHLO, MAIL FROM, a rule)")                 \
    X(rst_sent_server, "RSTs sent to the servers of sessions refused mid-way")                               \
    X(refusal_no_mbuf, "sessions refused mid-way whose server got no RST (no buffer free)")                  \
    X(monitor_passed, "would-be refusals forwarded anyway: monitor mode")                                    \
    X(malformed_eth_truncated, "dropped: frame shorter than an Ethernet header")                             \
    X(malformed_vlan_truncated, "dropped: VLAN tag cut short")                                               \
    X(malformed_too_many_tags, "dropped: more than 4 stacked VLAN tags")                                     \
    X(malformed_ipv4_truncated, "dropped: IPv4 header cut short")                                            \
    X(malformed_ipv4_bad_version, "dropped: IPv4 ethertype with another IP version")                         \
    X(malformed_ipv4_bad_ihl, "dropped: IPv4 IHL < 5 or past the frame")                                     \
    X(malformed_ipv4_bad_length, "dropped: IPv4 total length inconsistent with the frame")                   \
    X(malformed_ipv6_truncated, "dropped: IPv6 header cut short")                                            \
    X(malformed_ipv6_bad_version, "dropped: IPv6 ethertype with another IP version")                         \
    X(malformed_ipv6_bad_length, "dropped: IPv6 payload length past the frame, or jumbogram")                \
    X(malformed_ipv6_ext_truncated, "dropped: IPv6 extension header past the payload")                       \
    X(malformed_ipv6_ext_too_many, "dropped: IPv6 extension header chain longer than 8")                     \
    X(malformed_tcp_truncated, "dropped: TCP header cut short (incl. tiny first fragments)")                 \
    X(malformed_tcp_bad_offset, "dropped: TCP data offset < 5 or past the segment")                          \
    X(malformed_fragment_offset_one, "dropped: non-first fragment at offset 8 (RFC 1858/3128)")              \
    X(multi_segment, "dropped: refused frame spread over chained mbufs (cannot answer in place)")            \
    X(tx_full_outside, "dropped: outside port TX queue full")                                                \
    X(tx_full_inside, "dropped: inside port TX queue full")                                                  \
    X(events_lost, "refusal events not reported per source (event ring full); verdicts unaffected")

struct CounterInfo {
    const char* name;
    const char* help;
};

inline constexpr std::array kCounterInfo = {
#define PORTCULLIS_INFO(name, help) CounterInfo{#name, help},
    PORTCULLIS_COUNTERS(PORTCULLIS_INFO)
#undef PORTCULLIS_INFO
};

inline constexpr size_t kCounterCount = kCounterInfo.size();

}  // namespace portcullis
