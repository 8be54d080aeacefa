// The event stream (see event_log.hpp).
#include "control/daemon/event_log.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "control/daemon/source_stats.hpp"
#include "dataplane/policy.hpp"

namespace portcullis {

namespace {

// RFC 3339, UTC, microseconds: 2026-12-06T17:40:00.123456Z.
std::string rfc3339(int64_t unix_us) {
    if (unix_us < 0) unix_us = 0;
    const time_t secs = static_cast<time_t>(unix_us / 1'000'000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char date[32], out[48];
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(out, sizeof out, "%s.%06uZ", date, static_cast<unsigned>(unix_us % 1'000'000));
    return out;
}

const char* event_type(ReplyReason r) {
    switch (r) {
        case ReplyReason::Unapproved:
            return "refusal";
        case ReplyReason::Payload:
            return "payload_refusal";
        default:
            return "limit_refusal";
    }
}

const char* answer_name(uint8_t action) {
    switch (static_cast<Action>(action)) {
        case Action::Rst:
            return "rst";
        case Action::Smtp:
            return "smtp";
        case Action::Drop:
            return "drop";
    }
    return "drop";
}

int open_append(const std::string& path) {
    return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

}  // namespace

nlohmann::ordered_json format_event(const RefusalEvent& e, int64_t unix_us, const EventContext& ctx,
                                    const std::string& host) {
    const auto reason = static_cast<ReplyReason>(e.reason < kReplyReasons ? e.reason : 0);
    const bool monitor = e.flags & kEventMonitor;
    // An unapproved source's record says why: banned, suspended, revoked, or an approval that expired.
    std::string why = reason_name(reason);
    if (reason == ReplyReason::Unapproved && ctx.approval.is_object()) {
        const std::string state = ctx.approval.value("state", "");
        why = state == "approved" ? "expired" : state;
    }
    nlohmann::ordered_json j;
    j["timestamp"] = rfc3339(unix_us);
    j["event_type"] = event_type(reason);
    j["host"] = host;
    j["src_ip"] = to_string(e.source());
    j["src_port"] = e.sport;
    j["dest_ip"] = to_string(e.destination());
    j["dest_port"] = e.dport;
    j["proto"] = "TCP";
    j["ip_version"] = e.v6 ? 6 : 4;
    j["reason"] = why;
    j["action"] = monitor ? "allowed" : "blocked";  // EVE alert.action's words: monitor mode lets it pass
    j["answer"] = monitor ? "none" : answer_name(e.action);
    j["stage"] = (e.flags & kEventSession) ? "session" : "connect";
    j["approval"] = ctx.approval.is_object() ? ctx.approval : nlohmann::json(nullptr);
    if (reason == ReplyReason::Payload) {
        nlohmann::ordered_json smtp = nlohmann::ordered_json::object();
        if (!ctx.helo.empty()) smtp["helo"] = ctx.helo;
        if (!ctx.mail_from.empty()) smtp["mail_from"] = ctx.mail_from;
        j["smtp"] = smtp;
        if (e.rule) {
            nlohmann::ordered_json alert;
            alert["signature_id"] = e.rule;
            if (!ctx.signature.empty()) alert["signature"] = ctx.signature;
            j["alert"] = alert;
        }
    }
    return j;
}

EventLog::EventLog(std::string path, bool syslog, std::string host, uint32_t rate)
    : path_(std::move(path)), syslog_(syslog), host_(std::move(host)), rate_(rate) {
    if (syslog_) openlog("portcullis", LOG_NDELAY | LOG_PID, LOG_DAEMON);
}

EventLog::~EventLog() {
    summarise();
    flush(0);
    if (fd_ >= 0) ::close(fd_);
    if (syslog_) closelog();
}

std::string EventLog::open() {
    if (path_.empty()) return {};
    fd_ = open_append(path_);
    if (fd_ < 0) return "events_file: cannot open " + path_ + ": " + std::strerror(errno);
    return {};
}

void EventLog::reopen() {
    if (path_.empty()) return;
    flush(0);
    const int fd = open_append(path_);
    if (fd < 0) {
        spdlog::error("events_file: cannot reopen {}: {} (still writing to the old file)", path_,
                      std::strerror(errno));
        return;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    ++reopens_;
    spdlog::info("events_file {} reopened", path_);
}

void EventLog::add(const RefusalEvent& e, int64_t unix_us, const EventContext& ctx) {
    if (!enabled()) return;
    if (rate_) {
        const int64_t second = unix_us / 1'000'000;
        if (second != second_) {
            summarise();
            second_ = second;
            used_ = 0;
        }
        if (used_ >= rate_) {
            ++suppressed_[e.reason < kReplyReasons ? e.reason : 0];
            ++suppressed_total_;
            return;
        }
        ++used_;
    }
    line(format_event(e, unix_us, ctx, host_).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void EventLog::add_remote(const IpAddr& source, const std::string& reply, int64_t unix_us,
                          const nlohmann::json& approval) {
    if (!enabled()) return;
    nlohmann::ordered_json j;
    j["timestamp"] = rfc3339(unix_us);
    j["event_type"] = "remote_refusal";
    j["host"] = host_;
    j["src_ip"] = to_string(source);
    j["ip_version"] = source.v6 ? 6 : 4;
    j["approval"] = approval.is_object() ? approval : nlohmann::json(nullptr);
    j["smtp"] = {{"reply", reply}};
    line(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void EventLog::line(const std::string& text) {
    if (syslog_) syslog(LOG_NOTICE, "%s", text.c_str());
    if (fd_ < 0) {
        ++written_;
        return;
    }
    pending_ += text;
    pending_ += '\n';
    ++pending_lines_;
    if (pending_.size() >= (1u << 20)) flush(0);
}

// One line for the events of second_ over the rate: how many, by reason.
void EventLog::summarise() {
    uint64_t n = 0;
    for (auto c : suppressed_) n += c;
    if (n == 0) return;
    nlohmann::ordered_json j;
    j["timestamp"] = rfc3339((second_ + 1) * 1'000'000);
    j["event_type"] = "suppressed";
    j["host"] = host_;
    j["count"] = n;
    j["window_seconds"] = 1;
    nlohmann::ordered_json by = nlohmann::ordered_json::object();
    for (unsigned r = 0; r < kReplyReasons; ++r)
        if (suppressed_[r]) by[reason_name(static_cast<ReplyReason>(r))] = suppressed_[r];
    j["by_reason"] = by;
    suppressed_ = {};
    line(j.dump());
}

void EventLog::flush(int64_t now_us) {
    if (rate_ && now_us / 1'000'000 > second_) summarise();  // a second over: its summary goes out now
    if (pending_.empty()) return;
    size_t done = 0;
    while (done < pending_.size()) {
        const ssize_t n = ::write(fd_, pending_.data() + done, pending_.size() - done);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        break;
    }
    uint64_t lost = 0;
    if (done < pending_.size()) {
        // The lines not wholly written are lost; a partial line is ended so the next starts clean.
        size_t first_lost = pending_.rfind('\n', done == 0 ? 0 : done - 1);
        first_lost = (done == 0 || first_lost == std::string::npos) ? 0 : first_lost + 1;
        for (size_t i = first_lost; i < pending_.size(); ++i) lost += pending_[i] == '\n';
        if (first_lost < done) [[maybe_unused]]
            auto r = ::write(fd_, "\n", 1);
        const int64_t now = static_cast<int64_t>(std::time(nullptr));
        if (now - last_warning_ >= 10) {
            last_warning_ = now;
            spdlog::error("events_file {}: {} event(s) not written: {}", path_, lost, std::strerror(errno));
        }
    }
    written_ += pending_lines_ - lost;
    lost_ += lost;
    pending_.clear();
    pending_lines_ = 0;
}

}  // namespace portcullis
