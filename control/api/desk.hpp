// The HTTP API's hand-over between the HTTP server's thread and the control thread. The server submits each
// request it has read whole, with a way to answer it; the control loop's pump() routes every request
// waiting (router.hpp) and serves the control requests they became through ControlPlane::serve as one
// batch (one group commit, like the control socket's pass), holds back the replies until the batch is
// durable, and answers. A reply that comes later (the DNS check) is asked again each pass. The queue is
// bounded: past it the server answers 503 at once, so a flood of API requests cannot grow memory or delay
// the control loop by more than one bounded batch a pass. The dataplane never sees any of it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "control/api/router.hpp"
#include "control/commands/control_plane.hpp"

namespace portcullis {

class ApiDesk {
  public:
    using Respond = std::function<void(HttpResponse)>;
    static constexpr size_t kMaxQueued = 256;

    explicit ApiDesk(ApiRouter& router);
    ~ApiDesk();
    ApiDesk(const ApiDesk&) = delete;
    ApiDesk& operator=(const ApiDesk&) = delete;

    // Any thread: queue a request; false when the queue is full (nothing queued; answer 503).
    bool submit(HttpRequest req, Respond respond);
    // Readable while requests wait: the control loop's poll wakes on it.
    int wake_fd() const { return wake_fd_; }
    // Control thread, every pass of the loop.
    void pump(ControlPlane& plane);
    // Control thread: what is still queued or waiting is dropped unanswered (at shutdown, with the server
    // stopped first).
    void drop_all();
    // Responses so far by status (control thread).
    const std::map<int, uint64_t>& responses() const { return responses_; }

  private:
    struct Job {
        HttpRequest req;
        Respond respond;
    };
    struct Waiting {
        Later later;
        std::function<HttpResponse(const nlohmann::json&)> finish;
        Respond respond;
        std::unique_ptr<Session> session;
    };
    void answer(const Respond& respond, const HttpResponse& rsp);

    ApiRouter& router_;
    std::mutex mutex_;
    std::deque<Job> queue_;
    std::vector<Waiting> waiting_;
    std::map<int, uint64_t> responses_;
    int wake_fd_ = -1;
};

}  // namespace portcullis
