// The event stream for abuse teams: one JSON object per line for every refusal (and, in monitor mode, every
// would-be refusal), with Suricata EVE's field names where EVE has one (docs/events.md, its JSON Schema in
// docs/events.schema.json). The control loop hands it the workers' events; it adds what only the control
// side knows (the approval record that applied, the session's EHLO name and MAIL FROM domain, the rule's
// text) and writes them to events_file (append, reopened on SIGHUP for logrotate) and/or syslog. A write that
// fails (a full disk) loses those lines, counted, never the daemon. At most events_rate lines a second: past
// it (a spoofed flood refuses millions of SYNs a second), events are counted by reason and summed up in one
// "suppressed" line a second, so the stream's disk and the SIEM see a flood without drowning in it.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "dataplane/cookie.hpp"
#include "dataplane/events.hpp"

namespace portcullis {

// What the control side adds to a worker's event.
struct EventContext {
    nlohmann::json approval;      // {"prefix", "state", "ticket"} of the record that applied, or null
    std::string helo, mail_from;  // payload refusals: the source's last EHLO name and MAIL FROM domain
    std::string signature;        // a rule's refusal: its reply line
};

// The event's JSON object (fields in a fixed order). unix_us: when the worker read the segment.
nlohmann::ordered_json format_event(const RefusalEvent& e, int64_t unix_us, const EventContext& ctx,
                                    const std::string& host);

// Does the event start a line in the stream? A connection attempt refused or a session ended: the later
// segments of a refused connection (its handshake's ACK, its reply's ACK) are not new refusals.
inline bool is_stream_event(const RefusalEvent& e) {
    return e.syn || (e.flags & kEventSession);
}

class EventLog {
  public:
    // path: events_file ("" for none); syslog: also to syslog (LOG_DAEMON, LOG_NOTICE); rate: lines a second
    // at most (0: no cap).
    EventLog(std::string path, bool syslog, std::string host, uint32_t rate = 0);
    ~EventLog();
    EventLog(const EventLog&) = delete;
    EventLog& operator=(const EventLog&) = delete;

    // Opens events_file; a one-line reason when it cannot (the daemon then does not start).
    std::string open();
    // SIGHUP: the file is opened again at its path (logrotate moved the old one away). A failure is logged
    // and the old descriptor kept, so that nothing is lost for want of a file.
    void reopen();
    bool enabled() const { return fd_ >= 0 || syslog_; }

    // Queues one event's line (or counts it, over the rate); flush() writes what is queued in one write(2),
    // after the summary of a past second's suppressed events. now_us: the wall clock.
    void add(const RefusalEvent& e, int64_t unix_us, const EventContext& ctx);
    // A receiver's 5xx reply to a source's session (event_type remote_refusal). Not held to events_rate: each
    // is a real session a real receiver answered.
    void add_remote(const IpAddr& source, const std::string& reply, int64_t unix_us,
                    const nlohmann::json& approval);
    void flush(int64_t now_us);
    // Whether add() would write a line now (the caller may skip building the context otherwise).
    bool wants(int64_t unix_us) const {
        return rate_ == 0 || unix_us / 1'000'000 != second_ || used_ < rate_;
    }

    uint64_t written() const { return written_; }
    uint64_t lost() const { return lost_; }  // lines a failed write lost
    uint64_t reopens() const { return reopens_; }
    uint64_t suppressed() const { return suppressed_total_; }  // events over the rate, summed up

  private:
    std::string path_;
    bool syslog_;
    std::string host_;
    int fd_ = -1;
    uint32_t rate_;
    int64_t second_ = -1;  // the unix second the rate's count is for
    uint32_t used_ = 0;
    std::array<uint64_t, kReplyReasons> suppressed_{};  // in second_, by reason
    uint64_t suppressed_total_ = 0;
    std::string pending_;
    void line(const std::string& text);
    void summarise();
    uint64_t pending_lines_ = 0;
    uint64_t written_ = 0, lost_ = 0, reopens_ = 0;
    int64_t last_warning_ = 0;
};

}  // namespace portcullis
