// etcd's JSON gateway over libcurl (see etcd_client.hpp).
#include "control/store/etcd_client.hpp"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <mutex>
#include <utility>

#include "api/wire.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

constexpr size_t kMaxReply = 256u << 20;  // a range page is bounded by its limit; this is a backstop
constexpr size_t kMaxWatchLine = 64u << 20;

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string b64(const std::string& s) {
    std::string out(4 * ((s.size() + 2) / 3), '\0');
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

// Throws on what is not base64.
std::string unb64(const std::string& s) {
    if (s.size() % 4 != 0) throw std::runtime_error("not base64 (length)");
    std::string out(s.size() / 4 * 3, '\0');
    const int n =
        EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
    if (n < 0) throw std::runtime_error("not base64");
    size_t len = static_cast<size_t>(n);
    if (!s.empty() && s.back() == '=') --len;
    if (s.size() >= 2 && s[s.size() - 2] == '=') --len;
    out.resize(len);
    return out;
}

// etcd's 64-bit integers: JSON strings (protobuf's JSON mapping), or numbers; absent means 0.
int64_t i64(const json& j, const char* name) {
    if (!j.contains(name)) return 0;
    const json& v = j[name];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (!v.is_string()) throw std::runtime_error(std::string(name) + ": not an integer");
    const std::string& s = v.get_ref<const std::string&>();
    size_t used = 0;
    const long long n = std::stoll(s, &used);
    if (used != s.size()) throw std::runtime_error(std::string(name) + ": not an integer");
    return n;
}

uint64_t u64(const json& j, const char* name) {
    if (!j.contains(name)) return 0;
    const json& v = j[name];
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (!v.is_string()) throw std::runtime_error(std::string(name) + ": not an integer");
    const std::string& s = v.get_ref<const std::string&>();
    size_t used = 0;
    const unsigned long long n = std::stoull(s, &used);
    if (used != s.size() || s.empty() || s[0] == '-')
        throw std::runtime_error(std::string(name) + ": not an integer");
    return n;
}

std::string str(const json& j, const char* name) {
    if (!j.contains(name)) return {};
    if (!j[name].is_string()) throw std::runtime_error(std::string(name) + ": not a string");
    return j[name].get<std::string>();
}

EtcdHeader header_of(const json& j) {
    EtcdHeader h;
    if (!j.contains("header")) return h;
    const json& hj = j["header"];
    if (!hj.is_object()) throw std::runtime_error("header: not an object");
    h.cluster_id = u64(hj, "cluster_id");
    h.revision = i64(hj, "revision");
    return h;
}

EtcdKv kv_of(const json& j) {
    if (!j.is_object()) throw std::runtime_error("kv: not an object");
    EtcdKv kv;
    kv.key = unb64(str(j, "key"));
    kv.value = unb64(str(j, "value"));
    kv.create_revision = i64(j, "create_revision");
    kv.mod_revision = i64(j, "mod_revision");
    kv.version = i64(j, "version");
    return kv;
}

// What the gateway says went wrong: {"error": "...", "code": N, "message": "..."}.
std::string gateway_error(const std::string& body) {
    auto j = json::parse(body, nullptr, false);
    if (j.is_object()) {
        if (j.contains("message") && j["message"].is_string())
            return printable(j["message"].get<std::string>(), 200);
        if (j.contains("error") && j["error"].is_string())
            return printable(j["error"].get<std::string>(), 200);
    }
    return printable(body, 200);
}

bool auth_expired(const std::string& why) {
    return why.find("invalid auth token") != std::string::npos ||
           why.find("user name is empty") != std::string::npos ||
           why.find("authentication") != std::string::npos;
}

size_t append_reply(char* data, size_t size, size_t n, void* user) {
    auto* out = static_cast<std::string*>(user);
    if (out->size() + size * n > kMaxReply) return 0;  // curl fails the transfer
    out->append(data, size * n);
    return size * n;
}

struct WatchState {
    const std::function<bool(const EtcdWatchMessage&)>* on_message;
    const std::atomic<bool>* stop;
    std::string pending, error;
    bool done = false;
};

size_t watch_bytes(char* data, size_t size, size_t n, void* user) {
    auto* w = static_cast<WatchState*>(user);
    w->pending.append(data, size * n);
    size_t start = 0;
    for (size_t nl; (nl = w->pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        const std::string line = w->pending.substr(start, nl - start);
        if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
        EtcdWatchMessage m;
        if (auto err = parse_etcd_watch_line(line, m); !err.empty()) {
            w->error = err;
            return 0;
        }
        if (!(*w->on_message)(m)) {
            w->done = true;
            return 0;
        }
    }
    w->pending.erase(0, start);
    if (w->pending.size() > kMaxWatchLine) {
        w->error = "a watch message longer than " + std::to_string(kMaxWatchLine) + " bytes";
        return 0;
    }
    return size * n;
}

int watch_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<WatchState*>(user)->stop->load() ? 1 : 0;
}

}  // namespace

std::string etcd_prefix_end(const std::string& prefix) {
    std::string end = prefix;
    while (!end.empty()) {
        auto& c = reinterpret_cast<unsigned char&>(end.back());
        if (c < 0xff) {
            ++c;
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');  // every key
}

std::string parse_etcd_range(const std::string& body, EtcdRange& out) {
    try {
        const json j = json::parse(body);
        if (!j.is_object()) return "etcd's range reply is not an object";
        out.header = header_of(j);
        out.kvs.clear();
        if (j.contains("kvs")) {
            if (!j["kvs"].is_array()) return "etcd's range reply: kvs is not an array";
            for (const auto& kv : j["kvs"]) out.kvs.push_back(kv_of(kv));
        }
        out.more = j.value("more", false);
        return {};
    } catch (const std::exception& e) {
        return std::string("etcd's range reply is malformed: ") + printable(e.what(), 120);
    }
}

std::string parse_etcd_watch_line(const std::string& line, EtcdWatchMessage& out) {
    try {
        const json j = json::parse(line);
        if (!j.is_object()) return "a watch message is not an object";
        if (j.contains("error")) {
            const json& e = j["error"];
            return "etcd ended the watch: " +
                   printable(e.is_object() ? e.value("message", e.dump()) : e.dump(), 200);
        }
        if (!j.contains("result") || !j["result"].is_object()) return "a watch message without a result";
        const json& r = j["result"];
        out.header = header_of(r);
        out.created = r.value("created", false);
        out.canceled = r.value("canceled", false);
        out.compact_revision = i64(r, "compact_revision");
        out.cancel_reason = str(r, "cancel_reason");
        out.events.clear();
        if (r.contains("events")) {
            if (!r["events"].is_array()) return "a watch message: events is not an array";
            for (const auto& e : r["events"]) {
                if (!e.is_object() || !e.contains("kv")) return "a watch event without a kv";
                EtcdEvent ev;
                const std::string type = str(e, "type");
                if (type == "DELETE")
                    ev.put = false;
                else if (!type.empty() && type != "PUT")
                    return "a watch event of unknown type '" + printable(type, 20) + "'";
                ev.kv = kv_of(e["kv"]);
                out.events.push_back(std::move(ev));
            }
        }
        return {};
    } catch (const std::exception& e) {
        return std::string("a malformed watch message: ") + printable(e.what(), 120);
    }
}

EtcdClient::EtcdClient(EtcdOptions opt) : opt_(std::move(opt)) {
    global_init();
    if (opt_.endpoints.empty()) opt_.endpoints.push_back("http://127.0.0.1:2379");
    curl_ = curl_easy_init();
}

EtcdClient::~EtcdClient() {
    if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

void EtcdClient::setup(void* handle, size_t endpoint, const std::string& path,
                       const std::string& body) const {
    CURL* c = static_cast<CURL*>(handle);
    curl_easy_setopt(c, CURLOPT_URL, (opt_.endpoints[endpoint] + path).c_str());
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, opt_.timeout_ms);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 5L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 2L);
    if (!opt_.ca.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, opt_.ca.c_str());
    if (!opt_.cert.empty()) curl_easy_setopt(c, CURLOPT_SSLCERT, opt_.cert.c_str());
    if (!opt_.key.empty()) curl_easy_setopt(c, CURLOPT_SSLKEY, opt_.key.c_str());
}

std::string EtcdClient::post_once(size_t endpoint, const std::string& path, const std::string& body,
                                  std::string* reply, long* status) {
    CURL* c = static_cast<CURL*>(curl_);
    if (!c) return "etcd: no curl handle";
    curl_easy_reset(c);
    setup(c, endpoint, path, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, opt_.timeout_ms);
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    if (!token_.empty()) headers = curl_slist_append(headers, ("Authorization: " + token_).c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    reply->clear();
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_reply);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
    const CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    *status = 0;
    if (rc != CURLE_OK) return "etcd at " + opt_.endpoints[endpoint] + ": " + curl_easy_strerror(rc);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    return {};
}

std::string EtcdClient::authenticate(size_t endpoint) {
    token_.clear();
    const std::string body = json{{"name", opt_.user}, {"password", opt_.password}}.dump();
    std::string reply;
    long status = 0;
    if (auto err = post_once(endpoint, "/v3/auth/authenticate", body, &reply, &status); !err.empty())
        return err;
    if (status != 200)
        return "etcd at " + opt_.endpoints[endpoint] + " refused user '" + printable(opt_.user, 40) +
               "': " + gateway_error(reply);
    auto j = json::parse(reply, nullptr, false);
    if (!j.is_object() || !j.contains("token") || !j["token"].is_string())
        return "etcd at " + opt_.endpoints[endpoint] + ": no token in its authentication reply";
    token_ = j["token"].get<std::string>();
    return {};
}

std::string EtcdClient::post(const std::string& path, const std::string& body, std::string* reply) {
    std::string last;
    for (size_t tried = 0; tried < opt_.endpoints.size(); ++tried) {
        const size_t e = (current_ + tried) % opt_.endpoints.size();
        if (!opt_.user.empty() && token_.empty())
            if (last = authenticate(e); !last.empty()) continue;
        long status = 0;
        last = post_once(e, path, body, reply, &status);
        if (last.empty() && status != 200 && !opt_.user.empty() && auth_expired(gateway_error(*reply))) {
            if (last = authenticate(e); !last.empty()) continue;
            last = post_once(e, path, body, reply, &status);
        }
        if (!last.empty()) continue;  // unreachable: the next endpoint
        current_ = e;
        if (status != 200) return "etcd at " + opt_.endpoints[e] + ": " + gateway_error(*reply);
        return {};
    }
    return last;
}

std::string EtcdClient::range(const std::string& key, const std::string& end, int64_t revision, int64_t limit,
                              EtcdRange& out) {
    json req{{"key", b64(key)}};
    if (!end.empty()) req["range_end"] = b64(end);
    if (revision) req["revision"] = std::to_string(revision);
    if (limit) req["limit"] = std::to_string(limit);
    std::string reply;
    if (auto err = post("/v3/kv/range", req.dump(), &reply); !err.empty()) return err;
    return parse_etcd_range(reply, out);
}

std::string EtcdClient::txn(const std::vector<EtcdCompare>& compares, const std::vector<EtcdOp>& ops,
                            bool* succeeded, EtcdHeader& out) {
    json cmp = json::array(), success = json::array();
    for (const auto& c : compares) {
        json j{{"key", b64(c.key)}, {"target", c.target}, {"result", c.result}};
        if (c.target == "VERSION")
            j["version"] = std::to_string(c.number);
        else if (c.target == "CREATE")
            j["create_revision"] = std::to_string(c.number);
        else if (c.target == "MOD")
            j["mod_revision"] = std::to_string(c.number);
        else
            j["value"] = b64(c.value);
        cmp.push_back(std::move(j));
    }
    for (const auto& op : ops) {
        if (op.put)
            success.push_back({{"request_put", {{"key", b64(op.key)}, {"value", b64(op.value)}}}});
        else
            success.push_back({{"request_delete_range", {{"key", b64(op.key)}}}});
    }
    std::string reply;
    const json req{{"compare", cmp}, {"success", success}, {"failure", json::array()}};
    if (auto err = post("/v3/kv/txn", req.dump(), &reply); !err.empty()) return err;
    try {
        const json j = json::parse(reply);
        out = header_of(j);
        *succeeded = j.value("succeeded", false);
    } catch (const std::exception& e) {
        return std::string("etcd's txn reply is malformed: ") + printable(e.what(), 120);
    }
    return {};
}

std::string EtcdClient::watch(const std::string& key, const std::string& end, int64_t start_revision,
                              const std::function<bool(const EtcdWatchMessage&)>& on_message,
                              const std::atomic<bool>& stop) {
    json create{{"key", b64(key)}};
    if (!end.empty()) create["range_end"] = b64(end);
    if (start_revision) create["start_revision"] = std::to_string(start_revision);
    const std::string body = json{{"create_request", create}}.dump();
    if (!opt_.user.empty() && token_.empty())
        if (auto err = authenticate(current_); !err.empty()) return err;
    CURL* c = curl_easy_init();
    if (!c) return "etcd: no curl handle";
    setup(c, current_, "/v3/watch", body);
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    if (!token_.empty()) headers = curl_slist_append(headers, ("Authorization: " + token_).c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    WatchState w{&on_message, &stop, {}, {}, false};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_bytes);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, watch_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &w);
    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    const std::string where = "etcd at " + opt_.endpoints[current_];
    if (stop.load() || w.done) return {};
    if (!w.error.empty()) return where + ": " + w.error;
    if (status != 0 && status != 200) {
        token_.clear();  // an expired token is the likely cause; the next attempt authenticates
        current_ = (current_ + 1) % opt_.endpoints.size();
        return where + ": watch refused (HTTP " + std::to_string(status) + "): " + gateway_error(w.pending);
    }
    current_ = (current_ + 1) % opt_.endpoints.size();  // the next attempt tries another member
    if (rc != CURLE_OK) return where + ": watch: " + curl_easy_strerror(rc);
    return where + ": the watch stream ended";
}

}  // namespace portcullis
