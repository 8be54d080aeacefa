// Approval store persistence (see store.hpp).
#include "control/store/store.hpp"

#include "control/store/durable_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace portcullis {

namespace fs = std::filesystem;

namespace {

constexpr const char* kHeader = R"({"journal":2})";

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

nlohmann::json prefix_list(const ApprovalStore::PrefixSet& s) {
    auto j = nlohmann::json::array();
    for (const auto& p : s) j.push_back(to_string(p));
    return j;
}

void read_prefix_list(const nlohmann::json& j, const char* key, ApprovalStore::PrefixSet& out) {
    if (!j.contains(key)) return;
    for (const auto& v : j.at(key)) {
        auto p = parse_prefix(v.get<std::string>());
        if (!p) throw std::runtime_error(std::string(key) + ": bad prefix");
        out.insert(*p);
    }
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The settings the daemon reads back (policy_builder.cpp): a stored value of another shape would stop the
// next start, so it is refused here, when it is written and when it is read.
std::string check_setting(const std::string& name, const nlohmann::json& v) {
    if (name == "monitor") return v.is_boolean() ? "" : "setting monitor: must be true or false";
    if (name == "limits") {
        if (!v.is_object()) return "setting limits: must be an object";
        for (const auto& [k, n] : v.items()) {
            if (k != "max_concurrent" && k != "rate_per_min" && k != "daily")
                return "setting limits: unknown key '" + k.substr(0, 40) + "'";
            if (!n.is_number_integer() || n.get<int64_t>() < 0 || n.get<int64_t>() > 1'000'000'000)
                return "setting limits: " + k + " must be a whole number from 0 to 1000000000";
        }
        return {};
    }
    return "unknown setting '" + name.substr(0, 40) + "'";
}

bool is_commit(const nlohmann::json& e) {
    return e.is_object() && e.contains("op") && e["op"] == "commit";
}

}  // namespace

ApprovalStore::ApprovalStore(fs::path dir) : dir_(std::move(dir)) {}

ApprovalStore::~ApprovalStore() {
    if (journal_fd_ >= 0) ::close(journal_fd_);
}

const Approval* ApprovalStore::find(const Prefix& p) const {
    auto it = records_.find(p);
    return it == records_.end() ? nullptr : &it->second;
}

const Approval* ApprovalStore::covering(const Prefix& p) const {
    for (int len = p.len; len >= 0; --len)
        if (auto it = records_.find(p.widened(static_cast<uint8_t>(len))); it != records_.end())
            return &it->second;
    return nullptr;
}

const Approval* ApprovalStore::most_specific(const IpAddr& a) const {
    return covering(Prefix{a, static_cast<uint8_t>(a.v6 ? 128 : 32)});
}

void ApprovalStore::remember_record(const Prefix& p) {
    auto at = records_.find(p);
    std::optional<Approval> before;
    if (at != records_.end()) before = at->second;
    undo_.push_back([this, p, before] {
        if (before)
            records_[p] = *before;
        else
            records_.erase(p);
    });
}

void ApprovalStore::remember_overlay(Overlay& o, const Prefix& p) {
    undo_.push_back([&o, p, was_added = o.added.count(p) > 0, was_removed = o.removed.count(p) > 0] {
        o.added.erase(p);
        o.removed.erase(p);
        if (was_added) o.added.insert(p);
        if (was_removed) o.removed.insert(p);
    });
}

void ApprovalStore::remember_setting(const std::string& name) {
    const bool had = settings_.contains(name);
    undo_.push_back([this, name, had, before = had ? settings_[name] : nlohmann::json()] {
        if (had)
            settings_[name] = before;
        else
            settings_.erase(name);
    });
}

std::string ApprovalStore::apply(const nlohmann::json& e, bool undoable) {
    try {
        if (!e.is_object()) return "an entry must be an object";
        const auto op = e.at("op").get<std::string>();
        if (!e.at("seq").is_number_unsigned()) return "seq: must be a whole number";
        const auto seq = e.at("seq").get<uint64_t>();
        if (op == "put") {
            Approval a = approval_from_json(e.at("record"));
            if (undoable) remember_record(a.prefix);
            if (undoable && !from_upstream_) touched_.emplace(StoreItem::Kind::Record, to_string(a.prefix));
            records_[a.prefix] = a;
        } else if (op == "overlay") {
            const auto set = e.at("set").get<std::string>();
            auto p = parse_prefix(e.at("prefix").get<std::string>());
            if (!p || (set != "managed" && set != "relay")) return "bad overlay entry";
            Overlay& o = set == "managed" ? managed_ : relay_;
            const bool add = e.at("add").get<bool>();
            const bool configured = e.value("configured", false);
            if (undoable) remember_overlay(o, *p);
            if (undoable && !from_upstream_)
                touched_.emplace(set == "managed" ? StoreItem::Kind::Managed : StoreItem::Kind::Relay,
                                 to_string(*p));
            (add ? o.removed : o.added).erase(*p);
            if (add != configured) (add ? o.added : o.removed).insert(*p);
        } else if (op == "setting") {
            const auto name = e.at("name").get<std::string>();
            if (auto err = check_setting(name, e.at("value")); !err.empty()) return err;
            if (undoable) remember_setting(name);
            if (undoable && !from_upstream_) touched_.emplace(StoreItem::Kind::Setting, name);
            settings_[name] = e.at("value");
        } else if (op == "item") {
            auto kind = parse_kind(e.at("kind").get<std::string>());
            if (!kind) return "item: unknown kind";
            if (auto err = set_item({*kind, e.at("name").get<std::string>(), e.at("value")}, undoable);
                !err.empty())
                return err;
        } else if (op == "fleet") {
            if (!e.at("meta").is_object()) return "fleet: meta must be an object";
            if (undoable) undo_.push_back([this, before = fleet_] { fleet_ = before; });
            fleet_ = e.at("meta");
        } else {
            return "unknown op '" + op + "'";
        }
        seq_ = seq;
    } catch (const std::exception& ex) {
        return ex.what();
    }
    return {};
}

std::string ApprovalStore::open(std::vector<std::string>& warnings) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) return "state_dir " + dir_.string() + ": " + ec.message();
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec, ec);

    // A compaction or an import that was killed leaves its temporary behind: never read, only in the way.
    const auto tmp = dir_ / "approvals.json.tmp";
    if (fs::exists(tmp, ec)) {
        const auto size = fs::file_size(tmp, ec);
        fs::remove(tmp, ec);
        warnings.push_back("removed a stale " + tmp.string() + " (" + std::to_string(ec ? 0 : size) +
                           " bytes) left by an interrupted compaction");
    }

    const auto snap = dir_ / "approvals.json";
    if (fs::exists(snap)) {
        try {
            const auto j = nlohmann::json::parse(read_file(snap));
            if (j.at("format") != 1) return snap.string() + ": unknown format";
            if (!j.at("seq").is_number_unsigned()) return snap.string() + ": seq: must be a whole number";
            seq_ = j.at("seq").get<uint64_t>();
            for (const auto& r : j.at("records")) {
                Approval a = approval_from_json(r);
                records_[a.prefix] = a;
            }
            read_prefix_list(j, "managed_added", managed_.added);
            read_prefix_list(j, "managed_removed", managed_.removed);
            read_prefix_list(j, "relay_added", relay_.added);
            read_prefix_list(j, "relay_removed", relay_.removed);
            if (j.contains("fleet")) {
                if (!j.at("fleet").is_object()) return snap.string() + ": fleet: must be an object";
                fleet_ = j.at("fleet");
            }
            if (j.contains("settings")) {
                if (!j.at("settings").is_object()) return snap.string() + ": settings: must be an object";
                for (const auto& [name, v] : j.at("settings").items())
                    if (auto err = check_setting(name, v); !err.empty()) return snap.string() + ": " + err;
                settings_ = j.at("settings");
            }
        } catch (const std::exception& ex) {
            return snap.string() + ": " + ex.what();
        }
    }
    return load_journal(dir_ / "journal.jsonl", warnings);
}

std::string ApprovalStore::load_journal(const fs::path& jpath, std::vector<std::string>& warnings) {
    std::string text;
    try {
        if (fs::exists(jpath)) text = read_file(jpath);
    } catch (const std::exception& ex) {
        return jpath.string() + ": " + ex.what();
    }
    const std::string name = jpath.string();
    const bool legacy = !text.empty() && !text.starts_with(std::string(kHeader) + "\n");
    const uint64_t snapshot_seq = seq_;

    size_t pos = legacy ? 0 : std::min(text.size(), std::strlen(kHeader) + 1), line_no = legacy ? 0 : 1;
    size_t keep = pos;                                     // bytes of the journal that stay
    std::vector<std::pair<size_t, nlohmann::json>> group;  // entries since the last commit line
    std::string problem;                                   // the first unreadable line of the tail
    size_t problem_line = 0;
    auto apply_entry = [&](size_t at, const nlohmann::json& e) -> std::string {
        if (!e.is_object() || !e.contains("seq") || !e["seq"].is_number_unsigned()) return "no 'seq'";
        if (e["seq"].get<uint64_t>() <= snapshot_seq) return {};  // already in the snapshot
        if (auto err = apply(e, false); !err.empty()) return name + ":" + std::to_string(at) + ": " + err;
        ++journal_entries_;
        return {};
    };
    while (pos < text.size()) {
        const size_t nl = text.find('\n', pos);
        ++line_no;
        nlohmann::json e;
        std::string err;
        if (nl == std::string::npos) {
            err = "no line end";
        } else {
            try {
                e = nlohmann::json::parse(std::string_view(text).substr(pos, nl - pos));
            } catch (const std::exception& ex) {
                err = ex.what();
            }
        }
        if (legacy) {
            // 0.1's journal: every complete line was acknowledged; only the very last may be torn.
            if (err.empty()) {
                err = apply_entry(line_no, e);
                if (!err.empty() && err.starts_with(name)) return err;
            }
            if (!err.empty()) {
                if (nl != std::string::npos && nl + 1 != text.size())
                    return name + ":" + std::to_string(line_no) + ": " + err;
                warnings.push_back(name + ":" + std::to_string(line_no) +
                                   ": dropped a torn last line (a change never acknowledged): " + err);
                break;
            }
            keep = nl + 1;
        } else if (!err.empty()) {
            if (problem.empty()) {
                problem = err;
                problem_line = line_no;
            }
        } else if (is_commit(e)) {
            if (!problem.empty())
                return name + ":" + std::to_string(problem_line) + ": " + problem +
                       " (before the commit at line " + std::to_string(line_no) +
                       ": the journal is damaged; restore state_dir from a backup)";
            for (const auto& [at, entry] : group)
                if (auto aerr = apply_entry(at, entry); !aerr.empty())
                    return aerr.starts_with(name) ? aerr : name + ":" + std::to_string(at) + ": " + aerr;
            group.clear();
            keep = nl + 1;
        } else if (problem.empty()) {
            group.emplace_back(line_no, std::move(e));
        }
        if (nl == std::string::npos) break;
        pos = nl + 1;
    }
    if (!legacy && (!group.empty() || !problem.empty()))
        warnings.push_back(name + ":" + std::to_string(group.empty() ? problem_line : group.front().first) +
                           ": dropped a torn tail of " + std::to_string(group.size()) +
                           " uncommitted change(s) (never acknowledged)" +
                           (problem.empty() ? "" : ": " + problem));

    const bool existed = fs::exists(jpath);
    journal_fd_ = ::open(jpath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (journal_fd_ < 0) return errno_text("open " + name);
    if (!existed)
        if (auto err = fsync_dir(dir_); !err.empty()) return err;
    journal_size_ = static_cast<off_t>(text.size());
    if (keep < text.size()) {
        if (::ftruncate(journal_fd_, static_cast<off_t>(keep)) != 0 || ::fsync(journal_fd_) != 0)
            return errno_text("truncate " + name);
        journal_size_ = static_cast<off_t>(keep);
    }
    if (legacy && journal_size_ > 0) {
        if (auto err = compact(); !err.empty())
            return "converting " + name + " to the committed format: " + err;
        warnings.push_back(name + ": converted to the committed journal format");
    }
    return {};
}

nlohmann::json ApprovalStore::snapshot_json() const {
    auto recs = nlohmann::json::array();
    for (const auto& [p, a] : records_) recs.push_back(to_json(a));
    return {{"format", 1},
            {"seq", seq_},
            {"records", std::move(recs)},
            {"managed_added", prefix_list(managed_.added)},
            {"managed_removed", prefix_list(managed_.removed)},
            {"relay_added", prefix_list(relay_.added)},
            {"relay_removed", prefix_list(relay_.removed)},
            {"settings", settings_},
            {"fleet", fleet_}};
}

std::string ApprovalStore::compact() {
    const auto snap = dir_ / "approvals.json";
    if (auto err = write_file_durably(
            snap, snapshot_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
        !err.empty())
        return err;
    // The snapshot now holds every journal entry (their seq are <= its seq): the journal may go.
    if (::ftruncate(journal_fd_, 0) != 0 || ::fsync(journal_fd_) != 0) return errno_text("truncate journal");
    journal_size_ = 0;
    journal_entries_ = 0;
    return {};
}

std::string ApprovalStore::append(const std::string& line) {
    // The header goes in with the first entry after the journal was emptied, so an empty journal costs no
    // write (a full disk at start is not a reason to refuse it).
    const std::string text = journal_size_ == 0 ? std::string(kHeader) + "\n" + line : line;
    if (!write_all(journal_fd_, text)) return errno_text("journal write");
    journal_size_ += static_cast<off_t>(text.size());
    return {};
}

ApprovalStore::Savepoint ApprovalStore::savepoint() const {
    return {journal_size_, undo_.size(), seq_, journal_entries_};
}

void ApprovalStore::rollback(const Savepoint& sp) {
    while (undo_.size() > sp.undo) {
        undo_.back()();
        undo_.pop_back();
    }
    seq_ = sp.seq;
    journal_entries_ = sp.entries;
    // Cut what was written after the savepoint, also when the write itself failed half-way.
    struct stat st {};
    if (::fstat(journal_fd_, &st) == 0 && st.st_size == sp.journal_size) {
        journal_size_ = sp.journal_size;
        return;
    }
    if (::ftruncate(journal_fd_, sp.journal_size) != 0) {
        broken_ = errno_text("the journal could not be cut back after a failed change (truncate)") +
                  "; no further change is accepted: restart the daemon";
        return;
    }
    journal_size_ = sp.journal_size;
}

void ApprovalStore::begin_batch() {
    batch_ = true;
    batch_start_ = savepoint();
}

std::string ApprovalStore::end_batch() {
    batch_ = false;
    if (journal_size_ == batch_start_.journal_size) {
        undo_.clear();
        touched_.clear();
        return {};
    }
    std::string err = broken_;
    if (err.empty() && upstream_ && !from_upstream_ && !touched_.empty()) err = commit_upstream();
    touched_.clear();
    if (err.empty()) err = append(nlohmann::json{{"op", "commit"}, {"seq", seq_}}.dump() + "\n");
    if (err.empty() && ::fdatasync(journal_fd_) != 0) err = errno_text("journal sync");
    if (!err.empty()) {
        rollback(batch_start_);
        undo_.clear();
        return err;
    }
    undo_.clear();
    // The changes are committed; folding them into a snapshot is housekeeping: when it fails (a full disk)
    // the journal stays as it is and the compaction is tried again after the next change.
    if (compact_due_ || journal_entries_ >= kCompactEvery)
        if (compact().empty()) compact_due_ = false;
    return {};
}

void ApprovalStore::abort_batch() {
    batch_ = false;
    touched_.clear();
    rollback(batch_start_);
    undo_.clear();
}

std::string ApprovalStore::change(const nlohmann::json& entry) {
    if (!broken_.empty()) return broken_;
    const bool own = !batch_;
    if (own) begin_batch();
    const Savepoint sp = savepoint();
    std::string err = apply(entry, true);
    if (err.empty())
        err = append(entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    if (!err.empty()) {
        rollback(sp);
        if (own) {
            batch_ = false;
            undo_.clear();
        }
        return err;
    }
    ++journal_entries_;
    return own ? end_batch() : "";
}

std::string ApprovalStore::put(const Approval& a) {
    return change({{"seq", seq_ + 1}, {"op", "put"}, {"record", to_json(a)}});
}

std::string ApprovalStore::put_all(const std::vector<Approval>& all) {
    if (!broken_.empty()) return broken_;
    const bool own = !batch_;
    if (own) begin_batch();
    const Savepoint sp = savepoint();
    for (const auto& a : all) {
        if (auto err = change({{"seq", seq_ + 1}, {"op", "put"}, {"record", to_json(a)}}); !err.empty()) {
            rollback(sp);
            if (own) {
                batch_ = false;
                undo_.clear();
            }
            return err;
        }
    }
    compact_due_ = !all.empty();
    return own ? end_batch() : "";
}

std::string ApprovalStore::set_setting(const std::string& name, const nlohmann::json& value) {
    return change({{"seq", seq_ + 1}, {"op", "setting"}, {"name", name}, {"value", value}});
}

std::string ApprovalStore::change_overlay(const std::string& set, bool add, const Prefix& p,
                                          const std::vector<Prefix>& configured) {
    bool in_config = false;
    for (const auto& c : configured) in_config |= c == p;
    return change({{"seq", seq_ + 1},
                   {"op", "overlay"},
                   {"set", set},
                   {"add", add},
                   {"prefix", to_string(p)},
                   {"configured", in_config}});
}

const char* kind_name(StoreItem::Kind k) {
    switch (k) {
        case StoreItem::Kind::Record:
            return "records";
        case StoreItem::Kind::Managed:
            return "managed";
        case StoreItem::Kind::Relay:
            return "relay";
        case StoreItem::Kind::Setting:
            return "settings";
    }
    return "?";
}

std::optional<StoreItem::Kind> parse_kind(std::string_view s) {
    for (auto k : {StoreItem::Kind::Record, StoreItem::Kind::Managed, StoreItem::Kind::Relay,
                   StoreItem::Kind::Setting})
        if (s == kind_name(k)) return k;
    return std::nullopt;
}

StoreItem ApprovalStore::item(StoreItem::Kind kind, const std::string& name) const {
    StoreItem it{kind, name, nullptr};
    if (kind == StoreItem::Kind::Setting) {
        if (settings_.contains(name)) it.value = settings_[name];
        return it;
    }
    const auto p = parse_prefix(name);
    if (!p) return it;
    if (kind == StoreItem::Kind::Record) {
        if (const Approval* a = find(*p)) it.value = to_json(*a);
        return it;
    }
    const Overlay& o = kind == StoreItem::Kind::Managed ? managed_ : relay_;
    if (o.added.count(*p))
        it.value = "added";
    else if (o.removed.count(*p))
        it.value = "removed";
    return it;
}

std::vector<StoreItem> ApprovalStore::items() const {
    std::vector<StoreItem> out;
    out.reserve(records_.size() + settings_.size());
    for (const auto& [p, a] : records_) out.push_back({StoreItem::Kind::Record, to_string(p), to_json(a)});
    for (const auto* o : {&managed_, &relay_}) {
        const auto kind = o == &managed_ ? StoreItem::Kind::Managed : StoreItem::Kind::Relay;
        for (const auto& p : o->added) out.push_back({kind, to_string(p), "added"});
        for (const auto& p : o->removed) out.push_back({kind, to_string(p), "removed"});
    }
    for (const auto& [name, v] : settings_.items()) out.push_back({StoreItem::Kind::Setting, name, v});
    return out;
}

std::string ApprovalStore::check_item(const StoreItem& it) {
    try {
        if (it.kind == StoreItem::Kind::Setting) {
            if (it.name.size() > 40) return "a setting's name of more than 40 bytes";
            return it.value.is_null() ? "" : check_setting(it.name, it.value);
        }
        const auto p = parse_prefix(it.name);
        if (!p || to_string(*p) != it.name) return "'" + it.name.substr(0, 60) + "' is not a prefix";
        if (it.kind == StoreItem::Kind::Record) {
            if (it.value.is_null()) return {};
            const Approval a = approval_from_json(it.value);
            if (!(a.prefix == *p)) return it.name + ": the record is for " + to_string(a.prefix);
            return {};
        }
        if (!it.value.is_null() && it.value != "added" && it.value != "removed")
            return it.name + ": an overlay entry is \"added\" or \"removed\"";
        return {};
    } catch (const std::exception& e) {
        return it.name.substr(0, 60) + ": " + e.what();
    }
}

// Sets one item as upstream holds it (validated as strictly as a local change).
std::string ApprovalStore::set_item(const StoreItem& it, bool undoable) {
    if (it.kind == StoreItem::Kind::Setting) {
        if (!it.value.is_null())
            if (auto err = check_setting(it.name, it.value); !err.empty()) return err;
        if (undoable) remember_setting(it.name);
        if (it.value.is_null())
            settings_.erase(it.name);
        else
            settings_[it.name] = it.value;
        return {};
    }
    const auto p = parse_prefix(it.name);
    if (!p || to_string(*p) != it.name) return "item: '" + it.name.substr(0, 60) + "' is not a prefix";
    if (it.kind == StoreItem::Kind::Record) {
        std::optional<Approval> a;
        if (!it.value.is_null()) {
            a = approval_from_json(it.value);
            if (!(a->prefix == *p)) return "item " + it.name + ": the record is for " + to_string(a->prefix);
        }
        if (undoable) remember_record(*p);
        if (a)
            records_[*p] = *a;
        else
            records_.erase(*p);
        return {};
    }
    if (!it.value.is_null() && it.value != "added" && it.value != "removed")
        return "item " + it.name + ": an overlay entry is \"added\" or \"removed\"";
    Overlay& o = it.kind == StoreItem::Kind::Managed ? managed_ : relay_;
    if (undoable) remember_overlay(o, *p);
    o.added.erase(*p);
    o.removed.erase(*p);
    if (it.value == "added") o.added.insert(*p);
    if (it.value == "removed") o.removed.insert(*p);
    return {};
}

std::string ApprovalStore::apply_upstream(const std::vector<StoreItem>& items, const nlohmann::json& fleet) {
    if (!broken_.empty()) return broken_;
    if (batch_) return "the fleet's changes cannot be applied inside a batch";
    from_upstream_ = true;
    begin_batch();
    std::string err;
    for (const auto& it : items) {
        err = change({{"seq", seq_ + 1},
                      {"op", "item"},
                      {"kind", kind_name(it.kind)},
                      {"name", it.name},
                      {"value", it.value}});
        if (!err.empty()) break;
    }
    if (err.empty()) err = change({{"seq", seq_ + 1}, {"op", "fleet"}, {"meta", fleet}});
    if (!err.empty()) {
        abort_batch();
        from_upstream_ = false;
        return err;
    }
    compact_due_ = compact_due_ || items.size() > 1024;
    err = end_batch();
    from_upstream_ = false;
    return err;
}

// Called by end_batch() with the batch's changes written and applied, before its commit line.
std::string ApprovalStore::commit_upstream() {
    std::vector<StoreItem> up;
    up.reserve(touched_.size());
    for (const auto& [kind, name] : touched_) up.push_back(item(kind, name));
    int64_t revision = 0;
    if (auto err = upstream_->commit(up, fleet_revision(), &revision); !err.empty()) return err;
    nlohmann::json meta = fleet_;
    meta["revision"] = revision;
    const nlohmann::json entry{{"seq", seq_ + 1}, {"op", "fleet"}, {"meta", meta}};
    if (auto err = apply(entry, true); !err.empty()) return err;
    if (auto err = append(entry.dump() + "\n"); !err.empty()) return err;
    ++journal_entries_;
    return {};
}

}  // namespace portcullis
