// What becomes of one outbound segment: the one vocabulary the classifier, the flow tracker and the worker's
// filing share. The classifier says Forward, Track, Refuse or Drop; the tracker turns Track into any of the
// others, with the reason, the answer and the reply line; the worker files the Outcome (worker.cpp: file()).
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/cookie.hpp"
#include "dataplane/policy.hpp"

namespace portcullis {

enum class Verdict : uint8_t {
    Forward,    // send on to the other port (strip_payload: without its payload, a SYN's TCP Fast Open data)
    Track,      // classifier: SMTP from a managed source, for the flow tracker and the source's limits
    Untracked,  // tracker: a segment of no known flow; a stateless refusal's next step, or unknown()
    Refuse,     // refuse the connection attempt: `action` answers it, for `reason` (monitor mode forwards)
    RefuseSession,  // end a session on both sides: the server gets a RST, the client `action` with `reply`
    Refused,        // a later client segment of a session so ended: its FIN is acknowledged, data reset
    Unacceptable,   // the server would not take it as it is (the normaliser; counted): dropped, monitor
                    // forwards
    Drop,           // dropped whatever the mode (a malformed frame, a policed fragment; counted)
    Monitored,      // monitor mode: would have been RefuseSession for `reason`; reported, then forwarded
};

struct Outcome {
    Verdict verdict;
    ReplyReason reason = ReplyReason::Unapproved;  // Refuse, RefuseSession: why (the reply line, the event)
    Action action = Action::Smtp;                  // Refuse, RefuseSession: how the client is answered
    bool strip_payload = false;                    // Forward
    uint32_t rule = 0;                             // RefuseSession for a rule's match: the rule's id
    const std::string* reply = nullptr;            // RefuseSession: the reply line (the policy's)
};
static_assert(sizeof(Outcome) <= 16, "returned in registers on the slow path");

}  // namespace portcullis
