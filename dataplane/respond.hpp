// Answers to refused TCP segments, written in place over the segment itself: MAC, IP and port pairs swapped,
// VLAN tags kept, so the answer goes back to the client on the segment and VLAN it came from, apparently from
// the server it tried to reach. No allocation: the frame's own buffer is reused.
//
// - make_rst_in_place: the TCP reset that refuses a segment (RFC 9293 3.10.7.1).
// - smtp_answer_in_place: the stateless SMTP refusal. A SYN gets a SYN-ACK whose sequence number is a cookie
//   (cookie.hpp); the ACK that completes the handshake gets the one-line SMTP reply (e.g. "550 5.7.1 ...")
//   with FIN; the client's FIN after it gets its ACK; data after it gets a RST. A segment that does not
//   acknowledge a valid cookie gets nothing. Nothing reaches the destination server.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/cookie.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/parse.hpp"

namespace portcullis {

// Rewrites the frame (whose parse is `p`, kind Tcp) into the RST. Returns the new frame length.
uint32_t make_rst_in_place(uint8_t* data, const Parsed& p);

// Ending a session mid-way (after what it said broke the policy): the segment is answered in place, as if
// from the server, with `line` + CRLF and FIN (smtp_close_in_place; 0 when it does not fit `capacity`), or a
// client's FIN after that is acknowledged (ack_fin_in_place). make_forward_rst writes into `out` a RST that
// continues the segment's direction (to the server), with the segment's own sequence number: the server,
// which never got the segment, accepts it and closes its side. Each returns the new frame length.
uint32_t smtp_close_in_place(uint8_t* data, uint32_t capacity, const Parsed& p, std::string_view line);
uint32_t ack_fin_in_place(uint8_t* data, const Parsed& p);
uint32_t make_forward_rst(const uint8_t* data, const Parsed& p, uint8_t* out, uint32_t out_capacity);

// Removes the segment's payload in place (a SYN's TCP Fast Open data), fixing the IP length and both
// checksums; TCP options stay. Returns the new frame length.
uint32_t strip_payload_in_place(uint8_t* data, const Parsed& p);

enum class SmtpStep : uint8_t {
    SynAck,  // answered a SYN
    Reply,   // completed handshake: sent the reply line and FIN
    FinAck,  // acknowledged the client's FIN after our reply
    Reset,   // the client sent data after our reply: reset
    Quiet,   // a valid segment that needs no answer (the ACK of our FIN)
    Forged,  // does not acknowledge a valid cookie: no answer
    NoRoom,  // the reply does not fit the buffer
};

// The counter each step is counted under (NoRoom: the refusal could not be answered, and is dropped).
inline Ctr smtp_step_counter(SmtpStep step) {
    switch (step) {
        case SmtpStep::SynAck:
            return Ctr::smtp_synack_sent;
        case SmtpStep::Reply:
            return Ctr::smtp_reply_sent;
        case SmtpStep::FinAck:
            return Ctr::smtp_finack_sent;
        case SmtpStep::Reset:
            return Ctr::rst_sent;
        case SmtpStep::Quiet:
            return Ctr::smtp_quiet;
        case SmtpStep::Forged:
            return Ctr::smtp_forged;
        case SmtpStep::NoRoom:
            break;
    }
    return Ctr::dropped_refused;
}

struct SmtpAnswer {
    SmtpStep step;
    uint32_t len;  // new frame length when there is an answer to send
};

// The reply line for each ReplyReason, without CRLF (from config).
using ReplyLines = std::array<std::string, kReplyReasons>;

// capacity: bytes available from `data` in the buffer. reason: why a SYN is refused (it travels in the
// cookie; later segments carry it back in their ACK, and get lines[that reason]).
SmtpAnswer smtp_answer_in_place(uint8_t* data, uint32_t capacity, const Parsed& p, const CookieKey& key,
                                uint64_t slot, ReplyReason reason, const ReplyLines& lines);

}  // namespace portcullis
