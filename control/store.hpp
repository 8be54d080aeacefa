// The approval store: every approval record and the live changes to managed prefixes and relay hosts, kept in
// a state directory so that nothing acknowledged is ever lost.
//
// On disk: approvals.json, a full snapshot written to a temporary file, fsync'd, renamed into place and the
// directory fsync'd; and journal.jsonl, one line per change since that snapshot, fdatasync'd before the
// mutation returns (or, in a batch, before the batch ends: the caller acknowledges only then). A crash can
// only tear the journal's last line, which was never acknowledged: open() drops it and says so. The journal
// is folded into a new snapshot every kCompactEvery changes and on every import.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "control/approval.hpp"

namespace portcullis {

class ApprovalStore {
  public:
    using Records = std::map<Prefix, Approval, PrefixLess>;
    using PrefixSet = std::set<Prefix, PrefixLess>;
    // Live changes to a configured prefix list: the effective list is config + added - removed.
    struct Overlay {
        PrefixSet added, removed;
    };
    static constexpr size_t kCompactEvery = 4096;

    explicit ApprovalStore(std::filesystem::path dir);
    ~ApprovalStore();
    ApprovalStore(const ApprovalStore&) = delete;
    ApprovalStore& operator=(const ApprovalStore&) = delete;

    // Creates the directory (0750) if needed and loads it. Returns "" or a one-line error; `warnings` gets
    // what an operator should read (a torn journal line dropped).
    std::string open(std::vector<std::string>& warnings);

    const Records& records() const { return records_; }
    const Approval* find(const Prefix& p) const;
    // The most specific record whose prefix contains `a` (nullptr if none).
    const Approval* most_specific(const IpAddr& a) const;
    // The most specific record whose prefix contains all of `p` (itself included).
    const Approval* covering(const Prefix& p) const;
    const Overlay& managed() const { return managed_; }
    const Overlay& relay() const { return relay_; }

    // Durable mutations: "" once the change is on disk, else the reason (and nothing changed).
    std::string put(const Approval& a);
    std::string put_all(const std::vector<Approval>& all);  // one atomic snapshot: all or nothing
    // set: "managed" or "relay"; add or remove `p` relative to the configured list `configured`.
    // Named settings changed live (e.g. "monitor"), kept like everything else. Null if never set.
    std::string set_setting(const std::string& name, const nlohmann::json& value);
    const nlohmann::json& settings() const { return settings_; }
    std::string change_overlay(const std::string& set, bool add, const Prefix& p,
                               const std::vector<Prefix>& configured);

    // Group commit: between begin_batch() and end_batch(), journal appends are written but not synced;
    // end_batch() syncs them once ("" or why not). Callers acknowledge nothing before end_batch() succeeds.
    void begin_batch();
    std::string end_batch();

    const std::filesystem::path& dir() const { return dir_; }
    size_t journal_entries() const { return journal_entries_; }

  private:
    std::string append(const nlohmann::json& entry);
    std::string change(const nlohmann::json& entry);  // append, apply, compact when due
    std::string compact();
    void maybe_compact();
    std::string apply(const nlohmann::json& entry);  // to memory only; "" or why the entry is bad
    nlohmann::json snapshot_json() const;

    std::filesystem::path dir_;
    Records records_;
    Overlay managed_, relay_;
    nlohmann::json settings_ = nlohmann::json::object();
    uint64_t seq_ = 0;  // sequence number of the last change applied
    int journal_fd_ = -1;
    bool batch_ = false, unsynced_ = false;
    size_t journal_entries_ = 0;
};

}  // namespace portcullis
