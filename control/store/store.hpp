// The approval store: every approval record and the live changes to managed prefixes and relay hosts, kept in
// a state directory so that nothing acknowledged is ever lost and nothing refused is ever kept.
//
// On disk: approvals.json, a full snapshot written to a temporary file, fsync'd, renamed into place and the
// directory fsync'd; and journal.jsonl, the changes since that snapshot. The journal starts with a header
// line ({"journal":2}); changes are appended as entries and made durable in groups: a group ends with a
// commit line ({"op":"commit","seq":N}) and one fdatasync, and only then are its changes acknowledged. On
// start, entries after the last commit line were never acknowledged (a crash or a full disk mid-group) and
// are dropped with a warning; damage before a commit line is corruption and stops the start, naming the line.
// A write, commit or sync that fails truncates the journal back to where the change began and undoes it in
// memory, so a full disk leaves no torn fragment for later changes to be glued to. The journal is folded into
// a new snapshot every kCompactEvery changes and after every import; stale temporaries are removed on open.
// A journal without the header (written by 0.1) is read as before and converted by a compaction on open.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "api/approval.hpp"

namespace portcullis {

// One item of the state a fleet of gateways shares (store = etcd: control/store/fleet.hpp keeps each in its
// own key): a record, one prefix's entry in the managed or relay overlay ("added" or "removed"), or a
// setting. value null: absent.
struct StoreItem {
    enum class Kind : uint8_t { Record, Managed, Relay, Setting };
    Kind kind;
    std::string name;  // the prefix, as text, or the setting's name
    nlohmann::json value;
};
const char* kind_name(StoreItem::Kind k);
std::optional<StoreItem::Kind> parse_kind(std::string_view s);

// Where a replica's changes are committed before they are kept (the fleet's etcd). commit(): "" and
// *revision once the items are committed there as they are after the batch, or why not (then the batch is
// undone). base: the revision this replica applied last.
class Upstream {
  public:
    virtual ~Upstream() = default;
    virtual std::string commit(const std::vector<StoreItem>& items, int64_t base, int64_t* revision) = 0;
};

class ApprovalStore {
  public:
    using Records = std::map<Prefix, Approval, PrefixLess>;
    using PrefixSet = std::set<Prefix, PrefixLess>;
    // Live changes to a configured prefix list: the effective list is config + added - removed.
    struct Overlay {
        PrefixSet added, removed;
    };
    // Where the store stood before a change: rollback() returns it there, on disk and in memory.
    struct Savepoint {
        off_t journal_size = 0;
        size_t undo = 0;
        uint64_t seq = 0;
        size_t entries = 0;
    };
    static constexpr size_t kCompactEvery = 4096;

    explicit ApprovalStore(std::filesystem::path dir);
    ~ApprovalStore();
    ApprovalStore(const ApprovalStore&) = delete;
    ApprovalStore& operator=(const ApprovalStore&) = delete;

    // Creates the directory (0750) if needed and loads it. Returns "" or a one-line error; `warnings` gets
    // what an operator should read (an unacknowledged tail dropped, a stale temporary removed).
    std::string open(std::vector<std::string>& warnings);

    const Records& records() const { return records_; }
    const Approval* find(const Prefix& p) const;
    // The most specific record whose prefix contains `a` (nullptr if none).
    const Approval* most_specific(const IpAddr& a) const;
    // The most specific record whose prefix contains all of `p` (itself included).
    const Approval* covering(const Prefix& p) const;
    const Overlay& managed() const { return managed_; }
    const Overlay& relay() const { return relay_; }
    const nlohmann::json& settings() const { return settings_; }

    // Mutations: "" once the change is durable (or, inside a batch, written and applied: durable at
    // end_batch()), else the reason, and nothing changed on disk or in memory.
    std::string put(const Approval& a);
    std::string put_all(const std::vector<Approval>& all);  // all or nothing
    // Named settings changed live (e.g. "monitor"), kept like everything else. Null if never set.
    std::string set_setting(const std::string& name, const nlohmann::json& value);
    // set: "managed" or "relay"; add or remove `p` relative to the configured list `configured`.
    std::string change_overlay(const std::string& set, bool add, const Prefix& p,
                               const std::vector<Prefix>& configured);

    // Group commit: between begin_batch() and end_batch(), changes are written and applied but not
    // committed; end_batch() commits them with one sync ("" or why not: then every change of the batch is
    // rolled back). Callers acknowledge nothing before end_batch() succeeds.
    void begin_batch();
    std::string end_batch();
    void abort_batch();  // undoes the whole batch (another log of the same changes failed)
    // Undoes every change made since `sp` (within the current batch), on disk and in memory.
    Savepoint savepoint() const;
    void rollback(const Savepoint& sp);

    // A fleet's replica (store = etcd). Changes made here are committed upstream at end_batch(), before the
    // local commit; the items the batch touched go up as they are after it.
    void set_upstream(Upstream* u) { upstream_ = u; }
    // The whole state as items, and one item as it is now.
    std::vector<StoreItem> items() const;
    StoreItem item(StoreItem::Kind kind, const std::string& name) const;
    // "" or why an item from upstream would not be kept (as strict as a local change).
    static std::string check_item(const StoreItem& it);
    // Items as upstream holds them, applied and kept as one local commit with the fleet's facts (`fleet`: its
    // marker, cluster, the revision applied), never sent back up. "" or why not (nothing changed).
    std::string apply_upstream(const std::vector<StoreItem>& items, const nlohmann::json& fleet);
    // The fleet's facts as last kept ({} before the first): "marker", "cluster", "revision".
    const nlohmann::json& fleet() const { return fleet_; }
    int64_t fleet_revision() const { return fleet_.value("revision", int64_t{0}); }

    const std::filesystem::path& dir() const { return dir_; }
    size_t journal_entries() const { return journal_entries_; }

  private:
    std::string change(const nlohmann::json& entry);  // apply and append, or neither
    std::string append(const std::string& line);
    std::string apply(const nlohmann::json& entry, bool undoable);  // to memory; "" or why it is bad
    std::string compact();
    std::string load_journal(const std::filesystem::path& path, std::vector<std::string>& warnings);
    nlohmann::json snapshot_json() const;

    std::filesystem::path dir_;
    Records records_;
    Overlay managed_, relay_;
    nlohmann::json settings_ = nlohmann::json::object();
    uint64_t seq_ = 0;  // sequence number of the last change applied
    int journal_fd_ = -1;
    off_t journal_size_ = 0;
    std::string broken_;  // set when a failed change could not be cut from the journal: refuse changes
    bool batch_ = false, compact_due_ = false;
    Savepoint batch_start_;
    std::vector<std::function<void()>> undo_;  // this batch's changes, to undo on rollback
    size_t journal_entries_ = 0;
    nlohmann::json fleet_ = nlohmann::json::object();
    Upstream* upstream_ = nullptr;
    bool from_upstream_ = false;
    std::set<std::pair<StoreItem::Kind, std::string>> touched_;  // this batch's, for upstream
    std::string set_item(const StoreItem& it, bool undoable);
    // What a change is about to alter, kept so that rollback() can put it back.
    void remember_record(const Prefix& p);
    void remember_overlay(Overlay& o, const Prefix& p);
    void remember_setting(const std::string& name);
    std::string commit_upstream();
};

}  // namespace portcullis
