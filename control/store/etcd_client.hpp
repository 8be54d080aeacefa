// A client of etcd's v3 API through its documented JSON gateway (POST /v3/kv/range, /v3/kv/txn, /v3/watch,
// /v3/auth/authenticate), over libcurl: TLS with a client certificate and a CA, user + password (a token,
// renewed when etcd says it expired), several endpoints tried in turn. Keys and values are bytes, base64 on
// the wire (OpenSSL's codec); etcd's 64-bit integers arrive as JSON strings. Control side only: each call
// blocks for at most `timeout_ms`, the watch until its stream ends, fails or `stop` is set. One client per
// thread (a curl handle is not shared).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace portcullis {

struct EtcdOptions {
    std::vector<std::string> endpoints;  // http://host:port or https://host:port
    std::string ca, cert, key;           // PEM files; empty: the system's CAs, no client certificate
    std::string user, password;          // empty user: no authentication
    long timeout_ms = 2000;
};

struct EtcdHeader {
    uint64_t cluster_id = 0;
    int64_t revision = 0;
};

struct EtcdKv {
    std::string key, value;
    int64_t create_revision = 0, mod_revision = 0, version = 0;
};

struct EtcdRange {
    EtcdHeader header;
    std::vector<EtcdKv> kvs;
    bool more = false;  // the limit cut the range short
};

struct EtcdEvent {
    bool put = true;  // else a delete (kv holds the key and its mod_revision)
    EtcdKv kv;
};

// One message of a watch stream.
struct EtcdWatchMessage {
    EtcdHeader header;
    bool created = false, canceled = false;
    int64_t compact_revision = 0;  // set when the start revision was compacted away (then canceled)
    std::string cancel_reason;
    std::vector<EtcdEvent> events;
};

// One operation of a transaction's success branch.
struct EtcdOp {
    bool put = true;  // else a delete of `key`
    std::string key, value;
};

// A comparison of a transaction: `target` is "VERSION", "CREATE", "MOD" or "VALUE"; `result` "EQUAL",
// "GREATER", "LESS" or "NOT_EQUAL"; the operand is `number` (revisions, versions) or `value`.
struct EtcdCompare {
    std::string key, target, result;
    int64_t number = 0;
    std::string value;
};

// Parsers of the gateway's replies, on their own so the fuzz target and the tests can drive them; each
// returns "" or why the reply is not what etcd sends.
std::string parse_etcd_range(const std::string& body, EtcdRange& out);
std::string parse_etcd_watch_line(const std::string& line, EtcdWatchMessage& out);
// The end of the range of every key starting with `prefix` (etcd's "prefix + 1").
std::string etcd_prefix_end(const std::string& prefix);

class EtcdClient {
  public:
    explicit EtcdClient(EtcdOptions opt);
    ~EtcdClient();
    EtcdClient(const EtcdClient&) = delete;
    EtcdClient& operator=(const EtcdClient&) = delete;

    // Each returns "" or a one-line reason that names etcd (the endpoint, what it said).
    // [key, end) at `revision` (0: the latest), at most `limit` keys (0: all), in key order.
    std::string range(const std::string& key, const std::string& end, int64_t revision, int64_t limit,
                      EtcdRange& out);
    // If every comparison holds, the operations, atomically. *succeeded says which; out: the revision after.
    std::string txn(const std::vector<EtcdCompare>& compares, const std::vector<EtcdOp>& ops, bool* succeeded,
                    EtcdHeader& out);
    // Watches [key, end) from `start_revision`: calls on_message for each message until it returns false,
    // the stream ends or fails (returns why), or `stop` is set (returns "").
    std::string watch(const std::string& key, const std::string& end, int64_t start_revision,
                      const std::function<bool(const EtcdWatchMessage&)>& on_message,
                      const std::atomic<bool>& stop);

    const std::string& endpoint() const { return opt_.endpoints[current_]; }

  private:
    // POSTs `body` to `path` on the current endpoint, then the others; "" and *reply, or why not.
    std::string post(const std::string& path, const std::string& body, std::string* reply);
    std::string post_once(size_t endpoint, const std::string& path, const std::string& body,
                          std::string* reply, long* status);
    std::string authenticate(size_t endpoint);
    void setup(void* curl, size_t endpoint, const std::string& path, const std::string& body) const;

    EtcdOptions opt_;
    size_t current_ = 0;
    std::string token_;
    void* curl_ = nullptr;  // CURL*, reused (keeps the connection)
};

}  // namespace portcullis
