// The fleet's replica of etcd (see fleet.hpp).
#include "control/store/fleet.hpp"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "api/wire.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

constexpr int64_t kProbeEveryMs = 1000;
constexpr int64_t kSyncWithinMs = 3000;  // etcd answered this recently: in sync
constexpr int64_t kPageKeys = 5000;

int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string fleet_id_of(const std::string& marker) {
    auto j = json::parse(marker, nullptr, false);
    if (j.is_object() && j.contains("fleet") && j["fleet"].is_string()) return j["fleet"].get<std::string>();
    return printable(marker, 40);
}

std::string random_id() {
    std::random_device rd;
    static const char* hex = "0123456789abcdef";
    std::string id;
    for (int i = 0; i < 16; ++i) id += hex[rd() & 15];
    return id;
}

}  // namespace

std::string fleet_key(const std::string& prefix, const StoreItem& it) {
    return prefix + kind_name(it.kind) + "/" + it.name;
}

std::string fleet_value(const StoreItem& it, const std::string& gateway, int64_t at) {
    return json{{"gateway", gateway}, {"at", at}, {"value", it.value}}.dump(-1, ' ', false,
                                                                            json::error_handler_t::replace);
}

std::string fleet_item(const std::string& prefix, const std::string& key, const std::string& value,
                       StoreItem& out) {
    if (!key.starts_with(prefix)) return "a key outside the fleet's prefix";
    const std::string rest = key.substr(prefix.size());
    const size_t slash = rest.find('/');
    if (slash == std::string::npos) return "'" + printable(rest, 60) + "' is not one of the fleet's keys";
    const auto kind = parse_kind(rest.substr(0, slash));
    if (!kind) return "'" + printable(rest, 60) + "' is not one of the fleet's keys";
    out.kind = *kind;
    out.name = rest.substr(slash + 1);
    out.value = nullptr;
    if (out.name.empty() || out.name.size() > 100)
        return "'" + printable(rest, 60) + "': a name of 1 to 100 bytes";
    if (!value.empty()) {
        auto j = json::parse(value, nullptr, false);
        if (!j.is_object() || !j.contains("value"))
            return printable(rest, 60) + ": the value is not the fleet's";
        out.value = j["value"];
        if (out.value.is_null()) return printable(rest, 60) + ": a null value";
    }
    if (auto err = ApprovalStore::check_item(out); !err.empty()) return printable(err, 200);
    // A record as the store keeps it (defaults filled in), so that sets compare equal.
    if (out.kind == StoreItem::Kind::Record && !out.value.is_null())
        out.value = to_json(approval_from_json(out.value));
    return {};
}

Fleet::Fleet(const Config& cfg, ApprovalStore& store, std::string* error) : cfg_(cfg), store_(store) {
    opt_.endpoints = cfg.etcd_endpoints;
    opt_.ca = cfg.etcd_ca;
    opt_.cert = cfg.etcd_cert;
    opt_.key = cfg.etcd_key;
    opt_.user = cfg.etcd_user;
    opt_.timeout_ms = cfg.etcd_timeout_ms;
    prefix_ = cfg.etcd_prefix;
    if (!cfg.etcd_password_file.empty()) {
        std::ifstream in(cfg.etcd_password_file);
        if (!in) {
            *error = "etcd_password_file: " + cfg.etcd_password_file + " cannot be read";
        } else {
            std::getline(in, opt_.password);
        }
    }
    const json& meta = store.fleet();
    expected_marker_ = meta.value("marker", std::string());
    expected_cluster_ = meta.value("cluster", uint64_t{0});
    applied_ = store.fleet_revision();
    stale_since_ms_ = wall_ms();
    writer_ = std::make_unique<EtcdClient>(opt_);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void Fleet::wake() {
    if (wake_fd_ < 0) return;
    const uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

Fleet::~Fleet() {
    stop();
    if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Fleet::start() {
    (void)spdlog::default_logger_raw();  // spdlog's registry is built here, before two threads log at once
    reader_ = std::thread([this] { read_loop(); });
    prober_ = std::thread([this] { probe_loop(); });
}

void Fleet::stop() {
    stop_ = true;
    interrupt_ = true;
    cv_.notify_all();
    if (reader_.joinable()) reader_.join();
    if (prober_.joinable()) prober_.join();
}

int64_t Fleet::now_ms() const {
    return wall_ms();
}

void Fleet::set_problem(const std::string& why) {
    std::lock_guard lk(m_);
    if (problem_ != why) spdlog::warn("fleet: {}", why);
    problem_ = why;
}

void Fleet::set_error(const std::string& why) {
    std::lock_guard lk(m_);
    if (error_ != why) spdlog::warn("fleet: {}", why);
    error_ = why;
}

std::string Fleet::full_read(EtcdClient& c, int64_t* next, bool whole) {
    EtcdRange r;
    if (auto err = c.range(prefix_ + "fleet", "", 0, 0, r); !err.empty()) {
        set_error(err);
        return err;
    }
    std::string problem;
    {
        std::lock_guard lk(m_);
        const std::string kept =
            " this gateway keeps enforcing the set of revision " + std::to_string(applied_);
        if (r.kvs.empty()) {
            problem =
                "etcd holds no fleet marker at " + prefix_ + "fleet: it is empty, new, or not this fleet's;" +
                kept +
                ". Run `portcullisctl fleet init` on the gateway whose set is right (then `fleet adopt` on "
                "the others)";
        } else if (!adopting_ && !expected_marker_.empty() && r.kvs[0].value != expected_marker_) {
            problem = "etcd holds fleet " + fleet_id_of(r.kvs[0].value) + ", not fleet " +
                      fleet_id_of(expected_marker_) + " this gateway applied;" + kept +
                      ". `portcullisctl fleet adopt` takes etcd's set";
        } else if (!adopting_ && expected_cluster_ && r.header.cluster_id != expected_cluster_) {
            problem = "etcd's cluster id " + std::to_string(r.header.cluster_id) + " is not " +
                      std::to_string(expected_cluster_) +
                      ", the one this gateway applied (a new or restored cluster?);" + kept +
                      ". `portcullisctl fleet adopt` takes etcd's set";
        } else if (!adopting_ && r.header.revision < applied_) {
            problem = "etcd is at revision " + std::to_string(r.header.revision) + ", behind the " +
                      std::to_string(applied_) + " this gateway applied (restored from an older backup?);" +
                      kept + ". `portcullisctl fleet adopt` takes etcd's set";
        }
    }
    if (!problem.empty()) {
        set_problem(problem);
        return problem;
    }
    {
        std::lock_guard lk(m_);
        if (!whole && !adopting_ && applied_ > 0 && r.kvs[0].value == expected_marker_) {
            // The replica is this fleet's: go on from its revision (a compacted one brings a whole read).
            *next = applied_ + 1;
            problem_.clear();
            error_.clear();
            return {};
        }
    }
    Update u;
    u.snapshot = true;
    u.revision = r.header.revision;
    u.cluster = r.header.cluster_id;
    u.marker = r.kvs[0].value;
    std::string key = prefix_;
    const std::string end = etcd_prefix_end(prefix_);
    for (;;) {
        EtcdRange page;
        if (auto err = c.range(key, end, u.revision, kPageKeys, page); !err.empty()) {
            set_error(err);
            return err;
        }
        for (auto& kv : page.kvs) u.kvs.push_back(std::move(kv));
        if (!page.more || page.kvs.empty()) break;
        key = u.kvs.back().key + std::string(1, '\0');
    }
    *next = u.revision + 1;
    std::lock_guard lk(m_);
    problem_.clear();
    error_.clear();
    expected_marker_ = u.marker;
    expected_cluster_ = u.cluster;
    adopting_ = false;
    applied_ = u.revision;
    inbox_.push_back(std::move(u));
    wake();
    return {};
}

void Fleet::read_loop() {
    EtcdClient c(opt_);
    int64_t next = 0;
    bool full = true, whole = false;  // check etcd (the marker) first; read the whole set, not go on
    int64_t backoff = 100;
    auto pause = [&](int64_t ms) {
        std::unique_lock lk(m_);
        cv_.wait_for(lk, std::chrono::milliseconds(ms), [&] { return stop_.load() || reread_.load(); });
    };
    while (!stop_) {
        if (reread_.exchange(false)) full = whole = true;
        if (full) {
            if (!full_read(c, &next, whole).empty()) {
                pause(1000);
                continue;
            }
            full = whole = false;
        }
        interrupt_ = false;
        bool compacted = false, foreign = false;
        const std::string marker_key = prefix_ + "fleet";
        const auto err = c.watch(
            prefix_, etcd_prefix_end(prefix_), next,
            [&](const EtcdWatchMessage& m) {
                if (m.compact_revision || m.canceled) {
                    compacted = true;
                    spdlog::info(
                        "fleet: the watch from revision {} was {} (compacted at {}): reading the whole set "
                        "again",
                        next, m.canceled ? "cancelled" : "compacted", m.compact_revision);
                    return false;
                }
                if (m.created) {
                    std::lock_guard lk(m_);
                    watching_ = true;
                    error_.clear();
                    backoff = 100;
                    return true;
                }
                if (m.events.empty()) return true;
                int64_t top = 0;
                {
                    std::lock_guard lk(m_);
                    for (const auto& e : m.events) {
                        top = std::max(top, e.kv.mod_revision);
                        if (e.kv.key == marker_key && (!e.put || e.kv.value != expected_marker_))
                            foreign = true;
                    }
                }
                if (foreign) {
                    set_problem(
                        "the fleet marker " + marker_key + " was deleted or replaced at revision " +
                        std::to_string(top) +
                        " (a wipe of etcd?): that revision is not applied; this gateway keeps its set. "
                        "`portcullisctl fleet adopt` takes etcd's");
                    return false;
                }
                Update u;
                u.revision = top;
                u.events = m.events;
                next = top + 1;
                std::lock_guard lk(m_);
                applied_ = std::max(applied_, top);
                inbox_.push_back(std::move(u));
                wake();
                return true;
            },
            interrupt_);
        {
            std::lock_guard lk(m_);
            watching_ = false;
            if (!stale_since_ms_) stale_since_ms_ = now_ms();
        }
        if (stop_) break;
        // Whatever ended the watch, etcd is checked again (its marker, cluster, revision) before the next.
        full = true;
        whole = compacted;
        if (compacted) continue;
        if (!err.empty()) set_error(err);
        pause(foreign ? 1000 : backoff);
        backoff = std::min<int64_t>(backoff * 2, 2000);
    }
}

void Fleet::probe_loop() {
    EtcdClient c(opt_);
    while (!stop_) {
        EtcdRange r;
        const auto err = c.range(prefix_ + "fleet", "", 0, 0, r);
        const int64_t now = now_ms();
        {
            std::lock_guard lk(m_);
            if (err.empty()) {
                last_ok_ms_ = now;
                etcd_revision_ = r.header.revision;
                endpoint_ = c.endpoint();
                // etcd emptied, replaced or restored under a watch that waits for a revision it may never
                // reach: the reader checks it again.
                const bool marker_ok =
                    !r.kvs.empty() && (expected_marker_.empty() || r.kvs[0].value == expected_marker_);
                const bool cluster_ok = !expected_cluster_ || r.header.cluster_id == expected_cluster_;
                if (watching_ && !adopting_ && (!marker_ok || !cluster_ok || r.header.revision < applied_))
                    interrupt_ = true;
            } else {
                if (error_ != err) spdlog::warn("fleet: {}", err);
                error_ = err;
                // A watch on a link that died quietly: start it again (on another member, if any).
                if (watching_ && now - last_ok_ms_ > kSyncWithinMs) interrupt_ = true;
            }
            const bool sync = watching_ && problem_.empty() && now - last_ok_ms_ <= kSyncWithinMs;
            if (sync)
                stale_since_ms_ = 0;
            else if (!stale_since_ms_)
                stale_since_ms_ = last_ok_ms_ && problem_.empty() ? last_ok_ms_ : now;
        }
        std::unique_lock lk(m_);
        cv_.wait_for(lk, std::chrono::milliseconds(kProbeEveryMs), [&] { return stop_.load(); });
    }
}

std::string Fleet::apply(const Update& u, std::vector<json>* audit) {
    const json& meta_now = store_.fleet();
    if (!u.snapshot && u.revision <= store_.fleet_revision()) return {};  // this gateway's own, or applied
    std::vector<StoreItem> items;
    std::set<std::string> gateways;
    size_t bad = 0;
    json meta = meta_now;
    auto note_writer = [&](const std::string& value) {
        auto j = json::parse(value, nullptr, false);
        if (j.is_object() && j.contains("gateway") && j["gateway"].is_string())
            gateways.insert(printable(j["gateway"].get<std::string>(), 64));
    };
    const std::string marker_key = prefix_ + "fleet";
    if (u.snapshot) {
        std::map<std::pair<StoreItem::Kind, std::string>, json> want;
        for (const auto& kv : u.kvs) {
            if (kv.key == marker_key) continue;
            StoreItem it;
            if (auto err = fleet_item(prefix_, kv.key, kv.value, it); !err.empty()) {
                if (++bad <= 3)
                    spdlog::warn("fleet: revision {}: {} ignored: {}", u.revision, printable(kv.key, 80),
                                 err);
                continue;
            }
            want[{it.kind, it.name}] = std::move(it.value);
        }
        for (const auto& it : store_.items()) {
            auto w = want.find({it.kind, it.name});
            if (w == want.end())
                items.push_back({it.kind, it.name, nullptr});
            else if (w->second == it.value)
                want.erase(w);
        }
        for (auto& [k, v] : want) items.push_back({k.first, k.second, std::move(v)});
        meta = json{{"marker", u.marker}, {"cluster", u.cluster}, {"fleet", fleet_id_of(u.marker)}};
    } else {
        for (const auto& e : u.events) {
            if (e.kv.key == marker_key) continue;
            StoreItem it;
            if (auto err = fleet_item(prefix_, e.kv.key, e.put ? e.kv.value : std::string(), it);
                !err.empty()) {
                if (++bad <= 3)
                    spdlog::warn("fleet: revision {}: {} ignored: {}", u.revision, printable(e.kv.key, 80),
                                 err);
                continue;
            }
            if (e.put) note_writer(e.kv.value);
            items.push_back(std::move(it));
        }
    }
    meta["revision"] = u.revision;
    if (auto err = store_.apply_upstream(items, meta); !err.empty()) return err;
    if (audit)
        audit->push_back({{"revision", u.revision},
                          {"read", u.snapshot ? "whole set" : "watch"},
                          {"items", items.size()},
                          {"ignored", bad},
                          {"gateways", gateways}});
    return {};
}

size_t Fleet::pump(std::vector<json>* audit) {
    if (wake_fd_ >= 0) {  // drained before the inbox is taken: a later update wakes the loop again
        uint64_t n;
        [[maybe_unused]] const auto got = ::read(wake_fd_, &n, sizeof n);
    }
    std::deque<Update> todo;
    {
        std::lock_guard lk(m_);
        todo.swap(inbox_);
    }
    size_t applied = 0;
    for (const auto& u : todo) {
        if (auto err = apply(u, audit); !err.empty()) {
            // Kept as it was (the local commit failed: a full disk?): read the whole set again later.
            spdlog::error("fleet: revision {} not applied: {}; reading the whole set again", u.revision, err);
            std::lock_guard lk(m_);
            applied_ = store_.fleet_revision();
            reread_ = true;
            interrupt_ = true;
            cv_.notify_all();
            break;
        }
        ++applied;
    }
    return applied;
}

bool Fleet::in_sync() const {
    std::lock_guard lk(m_);
    return watching_ && problem_.empty() && now_ms() - last_ok_ms_ <= kSyncWithinMs;
}

std::string Fleet::commit(const std::vector<StoreItem>& items, int64_t base, int64_t* revision) {
    {
        std::lock_guard lk(m_);
        const bool sync = watching_ && problem_.empty() && now_ms() - last_ok_ms_ <= kSyncWithinMs;
        if (!sync) {
            const std::string why = !problem_.empty() ? problem_
                                    : !error_.empty() ? error_
                                                      : "not connected yet";
            return "etcd: changes are refused while the fleet's store is away (" + why +
                   "); this gateway enforces the set of revision " + std::to_string(store_.fleet_revision());
        }
    }
    const std::string marker = store_.fleet().value("marker", std::string());
    if (marker.empty()) return "etcd: this gateway has not applied the fleet's set yet";
    const std::string marker_key = prefix_ + "fleet";
    const int64_t at = wall_ms() / 1000;
    size_t done = 0;
    while (done < items.size() || done == 0) {
        std::vector<EtcdCompare> cmp{{marker_key, "VALUE", "EQUAL", 0, marker},
                                     {marker_key, "MOD", "LESS", base + 1, {}}};
        std::vector<EtcdOp> ops{{true, marker_key, marker}};
        const size_t end = std::min(items.size(), done + kFleetTxnItems);
        for (size_t i = done; i < end; ++i) {
            if (items[i].value.is_null())
                ops.push_back({false, fleet_key(prefix_, items[i]), {}});
            else
                ops.push_back(
                    {true, fleet_key(prefix_, items[i]), fleet_value(items[i], cfg_.gateway_name, at)});
        }
        bool ok = false;
        EtcdHeader h;
        const std::string partly = done ? "; the first " + std::to_string(done) + " of " +
                                              std::to_string(items.size()) +
                                              " items were committed and come back through the watch"
                                        : "";
        if (auto err = writer_->txn(cmp, ops, &ok, h); !err.empty()) return err + partly;
        if (!ok)
            return "etcd: the fleet's set changed on another gateway meanwhile (this gateway is at "
                   "revision " +
                   std::to_string(base) + "): run the command again once it has caught up" + partly;
        base = h.revision;
        done = end;
        if (items.empty()) break;
    }
    *revision = base;
    std::lock_guard lk(m_);
    applied_ = std::max(applied_, base);
    return {};
}

std::string Fleet::init(json* reply) {
    EtcdRange r;
    const std::string marker_key = prefix_ + "fleet";
    if (auto err = writer_->range(marker_key, "", 0, 0, r); !err.empty()) return err;
    if (!r.kvs.empty())
        return "etcd already holds fleet " + fleet_id_of(r.kvs[0].value) +
               ": `portcullisctl fleet adopt` takes its set instead";
    const int64_t at = wall_ms() / 1000;
    const std::string id = random_id();
    const std::string marker = json{{"fleet", id}, {"created", at}, {"by", cfg_.gateway_name}}.dump();
    const auto items = store_.items();
    // The set first, the marker last: no gateway reads a half-seeded fleet.
    EtcdHeader h;
    for (size_t done = 0; done <= items.size(); done += kFleetTxnItems) {
        std::vector<EtcdCompare> cmp{{marker_key, "VERSION", "EQUAL", 0, {}}};
        std::vector<EtcdOp> ops;
        for (size_t i = done; i < std::min(items.size(), done + kFleetTxnItems); ++i)
            ops.push_back({true, fleet_key(prefix_, items[i]), fleet_value(items[i], cfg_.gateway_name, at)});
        if (done + kFleetTxnItems > items.size()) ops.push_back({true, marker_key, marker});
        bool ok = false;
        if (auto err = writer_->txn(cmp, ops, &ok, h); !err.empty()) return err;
        if (!ok)
            return "etcd: another gateway initialised the fleet meanwhile: `portcullisctl fleet adopt` takes "
                   "its set";
    }
    {
        std::lock_guard lk(m_);
        expected_marker_ = marker;
        expected_cluster_ = h.cluster_id;
        applied_ = 0;
        adopting_ = true;
        problem_.clear();
        reread_ = true;
        interrupt_ = true;
    }
    cv_.notify_all();
    *reply = json{{"fleet", id}, {"items", items.size()}, {"revision", h.revision}};
    return {};
}

void Fleet::adopt() {
    {
        std::lock_guard lk(m_);
        adopting_ = true;
        expected_marker_.clear();
        expected_cluster_ = 0;
        applied_ = 0;
        problem_.clear();
        reread_ = true;
        interrupt_ = true;
    }
    cv_.notify_all();
}

json Fleet::status() const {
    std::lock_guard lk(m_);
    const int64_t now = now_ms();
    const bool sync = watching_ && problem_.empty() && now - last_ok_ms_ <= kSyncWithinMs;
    json j{{"store", "etcd"},
           {"gateway", cfg_.gateway_name},
           {"prefix", prefix_},
           {"endpoint", endpoint_},
           {"fleet", store_.fleet().value("fleet", std::string())},
           {"revision", store_.fleet_revision()},
           {"etcd_revision", etcd_revision_},
           {"in_sync", sync}};
    if (!sync) {
        const int64_t since = stale_since_ms_ ? stale_since_ms_ : now;
        j["stale_since"] = format_time(since / 1000);
        j["stale_seconds"] = (now - since) / 1000;
    }
    if (!problem_.empty()) j["problem"] = problem_;
    if (!error_.empty() && !sync) j["error"] = error_;
    return j;
}

}  // namespace portcullis
