// Approval store persistence (see store.hpp).
#include "control/store.hpp"

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

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

bool write_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

std::string fsync_dir(const fs::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_text("open " + dir.string());
    const int rc = ::fsync(fd);
    ::close(fd);
    return rc == 0 ? "" : errno_text("fsync " + dir.string());
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
        if (!p) throw std::runtime_error(std::string(key) + ": bad prefix " + v.dump());
        out.insert(*p);
    }
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

std::string ApprovalStore::apply(const nlohmann::json& e) {
    try {
        const auto op = e.at("op").get<std::string>();
        if (op == "put") {
            Approval a = approval_from_json(e.at("record"));
            records_[a.prefix] = a;
        } else if (op == "overlay") {
            const auto set = e.at("set").get<std::string>();
            auto p = parse_prefix(e.at("prefix").get<std::string>());
            if (!p || (set != "managed" && set != "relay")) return "bad overlay entry";
            Overlay& o = set == "managed" ? managed_ : relay_;
            const bool add = e.at("add").get<bool>();
            const bool configured = e.value("configured", false);
            (add ? o.removed : o.added).erase(*p);
            if (add != configured) (add ? o.added : o.removed).insert(*p);
        } else if (op == "setting") {
            settings_[e.at("name").get<std::string>()] = e.at("value");
        } else {
            return "unknown op '" + op + "'";
        }
        seq_ = e.at("seq").get<uint64_t>();
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

    const auto snap = dir_ / "approvals.json";
    if (fs::exists(snap)) {
        std::ifstream in(snap);
        try {
            const auto j = nlohmann::json::parse(in);
            if (j.at("format").get<int>() != 1) return snap.string() + ": unknown format";
            seq_ = j.at("seq").get<uint64_t>();
            for (const auto& r : j.at("records")) {
                Approval a = approval_from_json(r);
                records_[a.prefix] = a;
            }
            read_prefix_list(j, "managed_added", managed_.added);
            read_prefix_list(j, "managed_removed", managed_.removed);
            read_prefix_list(j, "relay_added", relay_.added);
            read_prefix_list(j, "relay_removed", relay_.removed);
            if (j.contains("settings")) settings_ = j.at("settings");
        } catch (const std::exception& ex) {
            return snap.string() + ": " + ex.what();
        }
    }

    const auto jpath = dir_ / "journal.jsonl";
    std::string text;
    if (fs::exists(jpath)) {
        std::ifstream in(jpath, std::ios::binary);
        std::ostringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    }
    size_t pos = 0, line_no = 0, keep = 0;
    while (pos < text.size()) {
        const size_t nl = text.find('\n', pos);
        ++line_no;
        const bool last = nl == std::string::npos || nl + 1 == text.size();
        const std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        std::string err;
        nlohmann::json e;
        try {
            e = nlohmann::json::parse(line);
        } catch (const std::exception& ex) {
            err = ex.what();
        }
        if (err.empty() && nl == std::string::npos) err = "no line end";
        if (err.empty() && e.value("seq", uint64_t{0}) > seq_) err = apply(e);
        if (!err.empty()) {
            if (!last) return jpath.string() + ":" + std::to_string(line_no) + ": " + err;
            warnings.push_back(jpath.string() + ":" + std::to_string(line_no) +
                               ": dropped a torn last line (a change never acknowledged): " + err);
            break;
        }
        ++journal_entries_;
        keep = nl + 1;
        pos = nl + 1;
    }
    journal_fd_ = ::open(jpath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (journal_fd_ < 0) return errno_text("open " + jpath.string());
    if (keep < text.size() && ::ftruncate(journal_fd_, static_cast<off_t>(keep)) != 0)
        return errno_text("truncate " + jpath.string());
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
            {"settings", settings_}};
}

std::string ApprovalStore::compact() {
    const auto tmp = dir_ / "approvals.json.tmp";
    const auto snap = dir_ / "approvals.json";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return errno_text("open " + tmp.string());
    const bool ok = write_all(fd, snapshot_json().dump() + "\n") && ::fsync(fd) == 0;
    const int saved = errno;
    ::close(fd);
    if (!ok) {
        errno = saved;
        return errno_text("write " + tmp.string());
    }
    if (::rename(tmp.c_str(), snap.c_str()) != 0) return errno_text("rename " + tmp.string());
    if (auto err = fsync_dir(dir_); !err.empty()) return err;
    // The snapshot now holds every journal entry (their seq are <= its seq): the journal may go.
    if (::ftruncate(journal_fd_, 0) != 0 || ::fsync(journal_fd_) != 0) return errno_text("truncate journal");
    journal_entries_ = 0;
    return {};
}

std::string ApprovalStore::append(const nlohmann::json& entry) {
    const std::string line = entry.dump() + "\n";
    if (!write_all(journal_fd_, line)) return errno_text("journal write");
    ++journal_entries_;
    if (batch_) {
        unsynced_ = true;
        return {};
    }
    return ::fdatasync(journal_fd_) == 0 ? "" : errno_text("journal sync");
}

void ApprovalStore::begin_batch() {
    batch_ = true;
}

std::string ApprovalStore::end_batch() {
    batch_ = false;
    if (!unsynced_) return {};
    unsynced_ = false;
    return ::fdatasync(journal_fd_) == 0 ? "" : errno_text("journal sync");
}

std::string ApprovalStore::change(const nlohmann::json& entry) {
    if (auto err = append(entry); !err.empty()) return err;
    auto err = apply(entry);
    maybe_compact();
    return err;
}

void ApprovalStore::maybe_compact() {
    // The change is already in the journal; a failed compaction leaves the journal as it was and is tried
    // again at the next change. A compaction also makes what the batch wrote so far durable.
    if (journal_entries_ >= kCompactEvery && compact().empty()) unsynced_ = false;
}

std::string ApprovalStore::put(const Approval& a) {
    const nlohmann::json e = {{"seq", seq_ + 1}, {"op", "put"}, {"record", to_json(a)}};
    return change(e);
}

std::string ApprovalStore::put_all(const std::vector<Approval>& all) {
    const auto saved_records = records_;
    const auto saved_seq = seq_;
    for (const auto& a : all) records_[a.prefix] = a;
    ++seq_;
    if (auto err = compact(); !err.empty()) {
        records_ = saved_records;
        seq_ = saved_seq;
        return err;
    }
    return {};
}

std::string ApprovalStore::set_setting(const std::string& name, const nlohmann::json& value) {
    const nlohmann::json e = {{"seq", seq_ + 1}, {"op", "setting"}, {"name", name}, {"value", value}};
    return change(e);
}

std::string ApprovalStore::change_overlay(const std::string& set, bool add, const Prefix& p,
                                          const std::vector<Prefix>& configured) {
    bool in_config = false;
    for (const auto& c : configured) in_config |= c == p;
    const nlohmann::json e = {{"seq", seq_ + 1}, {"op", "overlay"},        {"set", set},
                              {"add", add},      {"prefix", to_string(p)}, {"configured", in_config}};
    return change(e);
}

}  // namespace portcullis
