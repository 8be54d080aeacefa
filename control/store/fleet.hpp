// A fleet of gateways sharing one approval set in etcd (store = etcd; docs/fleet.md). The local store
// (state_dir) becomes the replica of the last revision applied: it is what the gateway enforces, also across
// its own restart while etcd is away (fail-static).
//
// Keys, under etcd_prefix P: P "fleet" (the marker: which fleet this etcd holds; every write compares it and
// rewrites it, so its mod_revision orders the fleet's writes), P "records/" PREFIX, P "managed/" PREFIX,
// P "relay/" PREFIX, P "settings/" NAME. Values: {"gateway": who wrote it, "at": unix seconds, "value": the
// record, "added" / "removed", or the setting}.
//
// Reading: a thread reads the whole set at one revision (paged), then watches from the next; each watch
// message is applied whole on the control thread (pump()), in order, as one local commit, so a gateway never
// enforces half a transaction. A compacted or cancelled watch is followed by a full re-read, applied as the
// difference from what the replica holds. An etcd without the marker, with another marker or another
// cluster id, or behind the revision applied, is not applied: the gateway keeps its set and says why until
// an operator runs `fleet init` or `fleet adopt`. A second thread probes etcd every second (status: in sync,
// or stale since when).
//
// Writing: the store's batch goes up as one transaction per 100 items (etcd's default max-txn-ops is 128)
// that holds only if the marker is this fleet's and no write of the fleet happened after the revision the
// replica applied: two operators on two gateways cannot both act on what they saw (one is told to run the
// command again, once its gateway has caught up), so a ban made on one can never be undone by an approve on
// another. The reply comes after etcd committed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "control/config.hpp"
#include "control/store/etcd_client.hpp"
#include "control/store/store.hpp"

namespace portcullis {

// The key an item lives under, and back: "" and the item, or why a key or value is not one of the fleet's.
std::string fleet_key(const std::string& prefix, const StoreItem& it);
std::string fleet_value(const StoreItem& it, const std::string& gateway, int64_t at);
std::string fleet_item(const std::string& prefix, const std::string& key, const std::string& value,
                       StoreItem& out);

inline constexpr size_t kFleetTxnItems = 100;

class Fleet : public Upstream {
  public:
    // The password is read from etcd_password_file here; "" or why not in *error.
    Fleet(const Config& cfg, ApprovalStore& store, std::string* error);
    ~Fleet() override;
    Fleet(const Fleet&) = delete;
    Fleet& operator=(const Fleet&) = delete;

    void start();  // the reading and probing threads
    void stop();

    // Control thread, every pass: applies what the watch brought, in order. Returns how many revisions were
    // applied (the caller republishes the snapshot when it is not 0); *audit gets one line per revision
    // (who wrote it, which revision, how many items).
    size_t pump(std::vector<nlohmann::json>* audit);

    // Upstream: the batch's items in transactions (see above).
    std::string commit(const std::vector<StoreItem>& items, int64_t base, int64_t* revision) override;

    // `fleet init`: makes this etcd the fleet's (the marker) and seeds it with this gateway's set. Refused
    // when etcd holds a marker already. "" or why not; *reply: what was written.
    std::string init(nlohmann::json* reply);
    // `fleet adopt`: takes etcd's set as it is (even empty, another cluster, or an older revision) at the
    // next read. The operator's explicit decision, audited by the caller.
    void adopt();

    // Readable when the reader has handed over revisions to apply (an eventfd for the control loop's poll).
    int wake_fd() const { return wake_fd_; }

    // For `status`: store, endpoint, revision applied, in sync or stale since when, and why.
    nlohmann::json status() const;
    // Whether a write would be tried now (etcd answered within the last 3 s and nothing is amiss).
    bool in_sync() const;

  private:
    struct Update {
        bool snapshot = false;  // the whole set at `revision` (else one watch message's events)
        int64_t revision = 0;
        uint64_t cluster = 0;
        std::string marker;
        std::vector<EtcdKv> kvs;
        std::vector<EtcdEvent> events;
    };
    void read_loop();
    void probe_loop();
    // The reading thread's check of etcd (its marker, cluster, revision), then the whole set read at one
    // revision (whole, or a replica with nothing applied), or the replica's next revision to watch from.
    // "" or why not (then it tries again).
    std::string full_read(EtcdClient& c, int64_t* next, bool whole);
    void set_problem(const std::string& why);
    void set_error(const std::string& why);
    std::string apply(const Update& u, std::vector<nlohmann::json>* audit);
    int64_t now_ms() const;

    const Config& cfg_;
    ApprovalStore& store_;
    EtcdOptions opt_;
    std::string prefix_;
    std::unique_ptr<EtcdClient> writer_;  // the control thread's
    std::thread reader_, prober_;
    std::atomic<bool> stop_{false}, interrupt_{false}, reread_{false};

    mutable std::mutex m_;
    std::condition_variable cv_;
    std::deque<Update> inbox_;
    // What the replica expects etcd to be (empty marker: anything, the first read of a new replica).
    std::string expected_marker_;
    uint64_t expected_cluster_ = 0;
    int64_t applied_ = 0;  // the replica's revision, as the reader sees it
    bool adopting_ = false;
    bool watching_ = false;
    int64_t last_ok_ms_ = 0, stale_since_ms_ = 0, etcd_revision_ = 0;
    std::string problem_, error_, endpoint_;
    int wake_fd_ = -1;
    void wake();
};

}  // namespace portcullis
