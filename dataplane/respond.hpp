// Turns a refused TCP segment, in place, into the TCP RST that refuses it (RFC 9293 section 3.10.7.1):
// MAC, IP and port pairs swapped, VLAN tags kept, so the reset goes back to the client on the same segment
// and VLAN it came from, apparently from the server it tried to reach. No allocation: the frame's own
// buffer is reused, which always has room since the reply is never longer than the segment it answers.
#pragma once

#include <cstdint>

#include "dataplane/parse.hpp"

namespace portcullis {

// Rewrites data[0, len) (a frame whose parse is `p`, kind Tcp) into the RST. Returns the new frame length.
uint32_t make_rst_in_place(uint8_t* data, const Parsed& p);

}  // namespace portcullis
