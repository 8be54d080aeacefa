// Writes the frame fuzz target's seed corpus with the unit tests' frame builder (tests/unit/frames.hpp): one
// file per shape the parser and the responders handle (VLAN stacks, IPv4 options, IPv6 extension headers,
// fragments, UDP, TCP with SMTP command payloads) and a few malformed cuts of them. The files are committed;
// run it again after the builder or the parser learns a new shape:
//     build/tests/fuzz/frame_seeds tests/fuzz/corpus/frame
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dataplane/parse.hpp"
#include "tests/unit/frames.hpp"

using namespace portcullis;
using namespace portcullis::test;

namespace {

void write(const std::filesystem::path& dir, const std::string& name, const std::vector<uint8_t>& f) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size()));
}

FrameSpec v6(FrameSpec s) {
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:ff::25";
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: frame_seeds DIR\n");
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir);
    using tcpflag::ACK, tcpflag::FIN, tcpflag::PSH, tcpflag::RST;

    std::vector<std::pair<std::string, FrameSpec>> specs;
    FrameSpec s;
    specs.emplace_back("v4_syn", s);
    s = {};
    s.ip_options = 8;
    s.tcp_options = 12;
    s.flags = ACK | PSH;
    s.payload = "EHLO mail.example.com\r\n";
    specs.emplace_back("v4_options_ehlo", s);
    s = {};
    s.flags = ACK | PSH;
    s.payload = "MAIL FROM:<alice@example.com> SIZE=1024\r\nRCPT TO:<bob@example.org>\r\n";
    specs.emplace_back("v4_mail_from", s);
    s = {};
    s.flags = ACK | PSH;
    s.payload = "HELO [192.0.2.1]\r\nSTARTTLS\r\n";
    specs.emplace_back("v4_helo_literal_starttls", s);
    s = {};
    s.flags = ACK | PSH | FIN;
    s.payload = "MAIL FROM:<>\r\nDATA\r\nQUIT\r\n";
    specs.emplace_back("v4_null_sender_data_fin", s);
    s = {};
    s.dport = 2525;
    s.flags = ACK | PSH;
    s.payload = "ehlo host.example.net\r\n";
    specs.emplace_back("v4_other_port_ehlo", s);
    s = {};
    s.flags = ACK;
    s.ack = 12345;
    specs.emplace_back("v4_ack", s);
    s = {};
    s.flags = RST;
    specs.emplace_back("v4_rst", s);
    s = {};
    s.pad = 6;
    specs.emplace_back("v4_padded", s);
    s = {};
    s.tpids = {0x88a8, 0x8100};
    specs.emplace_back("qinq_syn", s);
    s = {};
    s.tpids = {0x88a8, 0x8100, 0x8100, 0x9100};
    specs.emplace_back("four_tags", s);
    s = {};
    s.tpids = {0x88a8, 0x8100, 0x8100, 0x8100, 0x8100};
    specs.emplace_back("five_tags", s);
    s = {};
    s.l4_proto = 17;
    s.dport = 53;
    s.payload = "dns";
    specs.emplace_back("v4_udp", s);
    s = {};
    s.frag = 100;
    specs.emplace_back("v4_later_fragment", s);
    s = {};
    s.frag = 0x2000;
    specs.emplace_back("v4_first_fragment", s);
    // The overlapping-fragment attack (docs/security.md, "Fragments"): a RST first fragment, a fragment at
    // offset 8 bytes rewriting its flags; and the same shapes whole or for other protocols.
    s = {};
    s.frag = 0x2000;
    s.flags = RST;
    specs.emplace_back("v4_rst_first_fragment", s);
    s = {};
    s.frag = 1;
    specs.emplace_back("v4_offset_one_fragment", s);
    s = {};
    s.frag = 0x2000;
    s.flags = ACK | PSH;
    s.src = "198.51.100.70";
    s.payload = "MAIL FROM:<a@example.com>\r\n";
    specs.emplace_back("v4_approved_first_fragment", s);
    s = {};
    s.frag = 0x4000;  // DF
    specs.emplace_back("v4_dont_fragment", s);
    s = {};
    s.l4_proto = 17;
    s.frag = 0x2000;
    s.payload = "dns";
    specs.emplace_back("v4_udp_first_fragment", s);
    specs.emplace_back("v6_syn", v6({}));
    s = v6({});
    s.ext6 = {{0, 6}, {43, 14}, {51, 10}, {60, 6}, {44, 0, 0}};
    specs.emplace_back("v6_ext_chain", s);
    s = v6({});
    s.ext6 = {{44, 0, 185}};
    specs.emplace_back("v6_later_fragment", s);
    s = v6({});
    s.ext6 = {{44, 0, 0, true}};
    s.flags = RST;
    specs.emplace_back("v6_rst_first_fragment", s);
    s = v6({});
    s.ext6 = {{44, 0, 1}};
    specs.emplace_back("v6_offset_one_fragment", s);
    s = v6({});
    s.ext6 = {{44, 0, 0, false}};
    specs.emplace_back("v6_atomic_fragment", s);
    s = v6({});
    s.ext6 = {{0, 6}, {44, 0, 0, true}, {60, 14}};
    specs.emplace_back("v6_first_fragment_dest_options", s);
    s = v6({});
    s.ext6 = {{44, 0, 0, true}, {44, 0, 5}};
    specs.emplace_back("v6_nested_fragment", s);
    s = v6({});
    for (int i = 0; i < 9; ++i) s.ext6.push_back({60, 6});
    specs.emplace_back("v6_too_many_ext", s);
    s = v6({});
    s.tpids = {0x88a8, 0x8100};
    s.ext6 = {{0, 6}, {60, 14}};
    s.flags = ACK | PSH;
    s.payload = "MAIL FROM:<a@example.com>\r\n";
    specs.emplace_back("v6_qinq_ext_mail_from", s);
    s = v6({});
    s.flags = ACK | PSH;
    s.tcp_options = 20;
    s.payload = "EHLO [IPv6:2001:db8::1]\r\n";
    specs.emplace_back("v6_ehlo_literal", s);

    for (const auto& [name, spec] : specs) write(dir, name, build_frame(spec));

    // Malformed cuts and edits of a plain SYN.
    const auto syn = build_frame(FrameSpec{});
    write(dir, "cut_eth", {syn.begin(), syn.begin() + 10});
    write(dir, "cut_ipv4", {syn.begin(), syn.begin() + 30});
    write(dir, "cut_tcp", {syn.begin(), syn.begin() + 14 + 20 + 8});
    auto f = syn;
    f[14] = 0x44;  // IHL 4
    write(dir, "bad_ihl", f);
    f = syn;
    f[14] = 0x55;  // version 5
    write(dir, "bad_version", f);
    f = syn;
    f[16] = 0xff;  // total length past the frame
    write(dir, "bad_total_length", f);
    f = syn;
    f[14 + 20 + 12] = 0x40;  // data offset 4
    write(dir, "bad_tcp_offset", f);
    f = syn;
    f[12] = 0x08;
    f[13] = 0x06;  // ARP
    write(dir, "arp", f);
    auto g = build_frame(v6({}));
    g[18] = 0xff;  // payload length past the frame
    write(dir, "v6_bad_length", g);
    // A tiny IPv6 first fragment: the fragment header and 8 bytes of TCP (RFC 7112).
    auto t = build_frame(v6([] {
        FrameSpec s;
        s.ext6 = {{44, 0, 0, true}};
        s.flags = RST;
        return s;
    }()));
    t.resize(14 + 40 + 8 + 8);
    t[18] = 0;
    t[19] = 16;
    write(dir, "v6_tiny_first_fragment", t);
    std::printf("wrote %zu frames to %s\n", specs.size() + 10, dir.c_str());
    return 0;
}
