// The HTTP API's hand-over to the control thread (see desk.hpp).
#include "control/api/desk.hpp"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <stdexcept>

namespace portcullis {

using nlohmann::json;

ApiDesk::ApiDesk(ApiRouter& router) : router_(router) {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::runtime_error("api: eventfd failed");
}

ApiDesk::~ApiDesk() {
    ::close(wake_fd_);
}

bool ApiDesk::submit(HttpRequest req, Respond respond) {
    {
        std::lock_guard lock(mutex_);
        if (queue_.size() >= kMaxQueued) return false;
        queue_.push_back({std::move(req), std::move(respond)});
    }
    const uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
    return true;
}

void ApiDesk::answer(const Respond& respond, const HttpResponse& rsp) {
    ++responses_[rsp.status];
    try {
        respond(rsp);
    } catch (const std::exception& e) {
        spdlog::error("api: answering failed: {}", e.what());
    }
}

void ApiDesk::drop_all() {
    std::deque<Job> jobs;
    {
        std::lock_guard lock(mutex_);
        jobs.swap(queue_);
    }
    waiting_.clear();
}

void ApiDesk::pump(ControlPlane& plane) {
    uint64_t n;  // drained before the queue is taken: a request queued after wakes the loop again
    [[maybe_unused]] const auto got = ::read(wake_fd_, &n, sizeof n);
    std::deque<Job> jobs;
    {
        std::lock_guard lock(mutex_);
        jobs.swap(queue_);
    }
    if (jobs.empty() && waiting_.empty()) return;

    struct Done {
        json reply;
        bool changed;
        std::function<HttpResponse(const json&)> finish;
        Respond respond;
    };
    std::vector<Done> done;
    std::vector<std::pair<HttpResponse, Respond>> refused;
    plane.begin_batch();
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        std::optional<json> body;
        try {
            body = it->later();
        } catch (const std::exception& e) {
            body = error_reply("internal error: " + printable(e.what(), 200));
        }
        if (!body) {
            ++it;
            continue;
        }
        done.push_back(
            {std::move(*body), plane.take_changed(), std::move(it->finish), std::move(it->respond)});
        it = waiting_.erase(it);
    }
    const auto now = ApiRouter::Clock::now();
    for (auto& job : jobs) {
        try {
            auto routed = router_.route(job.req, now);
            if (auto* rsp = std::get_if<HttpResponse>(&routed)) {
                refused.emplace_back(std::move(*rsp), std::move(job.respond));
                continue;
            }
            auto& call = std::get<ApiCall>(routed);
            auto session = std::make_unique<Session>();
            Reply r = plane.serve(call.line, call.peer, *session);
            if (r.later)
                waiting_.push_back(
                    {std::move(r.later), std::move(call.finish), std::move(job.respond), std::move(session)});
            else
                done.push_back(
                    {std::move(r.body), r.changed, std::move(call.finish), std::move(job.respond)});
        } catch (const std::exception& e) {
            spdlog::error("api request from {} failed: {}", printable(job.req.remote),
                          printable(e.what(), 200));
            refused.emplace_back(HttpResponse{500, json{{"error", "internal error"}}},
                                 std::move(job.respond));
        }
    }
    const std::string unsaved = plane.end_batch();
    for (auto& [rsp, respond] : refused) answer(respond, rsp);
    for (auto& d : done) {
        const json reply = d.changed && !unsaved.empty() ? error_reply("not saved: " + unsaved) : d.reply;
        HttpResponse rsp;
        try {
            rsp = d.finish(reply);
        } catch (const std::exception& e) {
            rsp = {500, json{{"error", "internal error"}}};
        }
        answer(d.respond, rsp);
    }
}

}  // namespace portcullis
