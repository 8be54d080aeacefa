// The fleet's keys and values, and etcd's replies as the gateway reads them: what a hostile or broken etcd
// (or an operator's etcdctl) can put there is refused item by item, never applied, never a crash.
#include <gtest/gtest.h>

#include "control/store/etcd_client.hpp"
#include "control/store/fleet.hpp"

using namespace portcullis;
using nlohmann::json;

namespace {

const std::string P = "/portcullis/";

json record_json(const std::string& prefix) {
    Approval a;
    a.prefix = *parse_prefix(prefix);
    a.hostname = "mail.example.com";
    a.ticket = "T-1";
    return to_json(a);
}

}  // namespace

TEST(FleetCodec, EveryKindRoundTrips) {
    const std::vector<StoreItem> items = {
        {StoreItem::Kind::Record, "198.51.100.7", record_json("198.51.100.7/32")},
        {StoreItem::Kind::Managed, "198.51.100.0/24", "added"},
        {StoreItem::Kind::Relay, "2001:db8::25", "removed"},
        {StoreItem::Kind::Setting, "monitor", true},
        {StoreItem::Kind::Setting, "limits", json{{"max_concurrent", 3}}},
    };
    for (const auto& it : items) {
        const auto key = fleet_key(P, it);
        EXPECT_TRUE(key.starts_with(P)) << key;
        StoreItem back;
        ASSERT_EQ(fleet_item(P, key, fleet_value(it, "gw-a", 1700000000), back), "") << key;
        EXPECT_EQ(back.kind, it.kind);
        EXPECT_EQ(back.name, it.name);
        EXPECT_EQ(back.value, it.value);
        // A delete carries no value: the item is absent.
        ASSERT_EQ(fleet_item(P, key, "", back), "");
        EXPECT_TRUE(back.value.is_null());
    }
}

TEST(FleetCodec, HostileKeysAndValuesAreRefusedOneByOne) {
    StoreItem out;
    const auto rec =
        fleet_value({StoreItem::Kind::Record, "198.51.100.7", record_json("198.51.100.7/32")}, "gw", 1);
    ASSERT_EQ(fleet_item(P, P + "records/198.51.100.7", rec, out), "");
    // Outside the prefix, unknown kinds, no name, names that are not canonical prefixes.
    EXPECT_NE(fleet_item(P, "/other/records/198.51.100.7/32", rec, out), "");
    EXPECT_NE(fleet_item(P, P + "secrets/x", rec, out), "");
    EXPECT_NE(fleet_item(P, P + "records", rec, out), "");
    EXPECT_NE(fleet_item(P, P + "records/", rec, out), "");
    EXPECT_NE(fleet_item(P, P + "records/198.51.100.7/32", rec, out), "");  // not the canonical form
    EXPECT_NE(fleet_item(P, P + "records/198.51.100.300/32", rec, out), "");
    EXPECT_NE(fleet_item(P, P + "records/" + std::string(200, '1'), rec, out), "");
    // A record filed under another prefix's key: applying it would change what the key does not name.
    EXPECT_NE(fleet_item(P, P + "records/198.51.100.8", rec, out), "");
    // Values that are not the fleet's envelope, or not the item's shape.
    for (const std::string v : {"", "{", "[]", "null", "{\"value\":null}", "{\"gateway\":\"x\"}",
                                "{\"value\":{\"prefix\":\"198.51.100.7/32\",\"state\":\"owned\"}}"}) {
        if (v.empty()) continue;
        EXPECT_NE(fleet_item(P, P + "records/198.51.100.7", v, out), "") << v;
    }
    EXPECT_NE(fleet_item(P, P + "managed/198.51.100.0/24", R"({"value":"maybe"})", out), "");
    EXPECT_NE(fleet_item(P, P + "settings/monitor", R"({"value":"yes"})", out), "");
    EXPECT_NE(fleet_item(P, P + "settings/limits", R"({"value":{"max_concurrent":-1}})", out), "");
    EXPECT_NE(fleet_item(P, P + "settings/unknown", R"({"value":1})", out), "");
}

TEST(EtcdReplies, RangeAndWatchAsTheGatewaySendsThem) {
    EtcdRange r;
    ASSERT_EQ(
        parse_etcd_range(
            R"({"header":{"cluster_id":"12585971608760269493","revision":"42"},)"
            R"("kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"40","version":"3","value":"YmFy"}],)"
            R"("count":"1","more":true})",
            r),
        "");
    EXPECT_EQ(r.header.cluster_id, 12585971608760269493ull);
    EXPECT_EQ(r.header.revision, 42);
    ASSERT_EQ(r.kvs.size(), 1u);
    EXPECT_EQ(r.kvs[0].key, "foo");
    EXPECT_EQ(r.kvs[0].value, "bar");
    EXPECT_EQ(r.kvs[0].mod_revision, 40);
    EXPECT_TRUE(r.more);

    EtcdWatchMessage m;
    ASSERT_EQ(
        parse_etcd_watch_line(
            R"({"result":{"header":{"revision":"7"},"events":[{"kv":{"key":"Zm9v","mod_revision":"7","value":"YQ=="}},)"
            R"({"type":"DELETE","kv":{"key":"Zm8=","mod_revision":"7"}}]}})",
            m),
        "");
    ASSERT_EQ(m.events.size(), 2u);
    EXPECT_TRUE(m.events[0].put);
    EXPECT_EQ(m.events[0].kv.value, "a");
    EXPECT_FALSE(m.events[1].put);
    EXPECT_EQ(m.events[1].kv.key, "fo");
    ASSERT_EQ(parse_etcd_watch_line(
                  R"({"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"5"}})", m),
              "");
    EXPECT_TRUE(m.canceled);
    EXPECT_EQ(m.compact_revision, 5);
}

TEST(EtcdReplies, MalformedRepliesAreErrorsNotCrashes) {
    EtcdRange r;
    EtcdWatchMessage m;
    for (const std::string bad :
         {"", "{", "[]", R"({"kvs":{}})", R"({"kvs":[1]})", R"({"kvs":[{"key":"!!!!"}]})",
          R"({"kvs":[{"key":"Zm9","value":""}]})", R"({"header":{"revision":"12x"}})",
          R"({"header":{"revision":{}}})", R"({"header":{"cluster_id":"-1"}})",
          R"({"header":{"revision":"99999999999999999999999"}})"})
        EXPECT_NE(parse_etcd_range(bad, r), "") << bad;
    for (const std::string bad :
         {"", "x", "{}", R"({"result":1})", R"({"result":{"events":[{}]}})",
          R"({"result":{"events":[{"type":"EXPLODE","kv":{"key":"Zm9v"}}]}})",
          R"({"result":{"events":[{"kv":{"key":7}}]}})", R"({"error":{"message":"etcdserver: no leader"}})"})
        EXPECT_NE(parse_etcd_watch_line(bad, m), "") << bad;
}

TEST(EtcdReplies, PrefixEnd) {
    EXPECT_EQ(etcd_prefix_end("/portcullis/"), "/portcullis0");
    EXPECT_EQ(etcd_prefix_end(std::string("a\xff", 2)), "b");
}
