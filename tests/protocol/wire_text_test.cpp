// Messages whose text fields are not UTF-8 (protocol/wire_text.h): the agent escapes them, and
// the controller reads what an agent did not escape instead of losing the whole message.

#include "protocol/wire_text.h"

#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>

#include "common/utf8.h"
#include "protocol/action_catalog.h"
#include "protocol/actions.pb.h"
#include "protocol/agent_channel.pb.h"

namespace riposte {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

// A process list as an agent that does not escape would send it: one name that is not UTF-8
// among ordinary ones, and a YARA-style map with a bad key.
proto::ProcessListResult hostile_list() {
  proto::ProcessListResult list;
  for (int pid : {1, 2, 3}) {
    auto* p = list.add_processes();
    p->set_pid(pid);
    p->set_name(pid == 2 ? "\xff\xfe" : "ok");
    p->set_exe(pid == 2 ? "/tmp/sl\xff"
                          "eep"
                        : "/usr/bin/ok");
  }
  return list;
}

TEST(WireTextMessages, ProtobufRefusesTheWholeMessageForOneBadName) {
  google::protobuf::LogSilencer quiet;
  proto::ProcessListResult parsed;
  EXPECT_FALSE(parsed.ParseFromString(hostile_list().SerializeAsString()));
}

TEST(WireTextMessages, ParseRepairingKeepsEveryProcessAndEscapesTheBadOne) {
  google::protobuf::LogSilencer quiet;
  proto::ProcessListResult parsed;
  auto how = parse_repairing(parsed, hostile_list().SerializeAsString());
  ASSERT_TRUE(how) << how.error().message;
  EXPECT_EQ(*how, ParseRepair::repaired);
  ASSERT_EQ(parsed.processes_size(), 3);
  EXPECT_EQ(parsed.processes(0).name(), "ok");
  EXPECT_EQ(parsed.processes(1).name(), kFffd + "ff" + kFffd + "fe");
  EXPECT_EQ(from_wire_text(parsed.processes(1).exe()).value(),
            "/tmp/sl\xff"
            "eep");
  // What the agent's own escaping makes of it is exactly the same.
  auto escaped = hostile_list();
  EXPECT_TRUE(escape_text_fields(escaped));
  EXPECT_EQ(escaped.SerializeAsString(), parsed.SerializeAsString());
  // A message that needed nothing is read as it is.
  proto::ProcessListResult again;
  EXPECT_EQ(parse_repairing(again, parsed.SerializeAsString()).value(), ParseRepair::none);
}

TEST(WireTextMessages, BytesFieldsAndMapsAndNestedMessages) {
  google::protobuf::LogSilencer quiet;
  proto::YaraScanResult scan;
  auto* match = scan.add_matches();
  match->set_rule("Rule");
  match->set_target("/srv/bad\xff.txt");
  (*match->mutable_metadata())["auth\xffor"] = "v\xfe";
  auto* s = match->add_strings();
  s->set_data("\x00\xff\x90", 3);
  scan.add_errors("cannot open /srv/\xc0");
  proto::YaraScanResult parsed;
  ASSERT_TRUE(parse_repairing(parsed, scan.SerializeAsString()));
  EXPECT_EQ(parsed.matches(0).target(), "/srv/bad" + kFffd + "ff.txt");
  ASSERT_EQ(parsed.matches(0).metadata().size(), 1u);
  EXPECT_EQ(parsed.matches(0).metadata().begin()->first, "auth" + kFffd + "ffor");
  EXPECT_EQ(parsed.matches(0).metadata().begin()->second, "v" + kFffd + "fe");
  EXPECT_EQ(from_wire_text(parsed.matches(0).strings(0).data()).value(),
            std::string("\x00\xff\x90", 3));
  EXPECT_EQ(parsed.errors(0), "cannot open /srv/" + kFffd + "c0");

  // An Envelope: its `string`s are repaired, its `bytes` (a result's output) left as sent.
  proto::Envelope envelope;
  auto* result = envelope.mutable_action_result();
  result->set_action_id("a1");
  result->set_message("open(/tmp/\xff): denied");
  result->set_output(std::string("\xff\x00\xfe", 3));
  EXPECT_FALSE(text_fields_are_utf8(envelope));
  proto::Envelope read;
  ASSERT_TRUE(parse_repairing(read, envelope.SerializeAsString()));
  EXPECT_EQ(read.action_result().message(), "open(/tmp/" + kFffd + "ff): denied");
  EXPECT_EQ(read.action_result().output(), std::string("\xff\x00\xfe", 3));
  EXPECT_TRUE(text_fields_are_utf8(read));
}

TEST(WireTextMessages, BytesThatAreNoMessageAtAllAreRefusedWithAReason) {
  proto::ProcessListResult parsed;
  auto how = parse_repairing(parsed, "\x0a\xff\xff\xff\xff\x0f");
  ASSERT_FALSE(how);
  EXPECT_NE(how.error().message.find("not a ProcessListResult"), std::string::npos)
      << how.error().message;
}

TEST(WireTextMessages, TheCatalogShowsAnUnreadableResultAsSuchNeverAsNull) {
  google::protobuf::LogSilencer quiet;
  const auto listed =
      action_catalog::result_to_json("process.list", hostile_list().SerializeAsString());
  ASSERT_TRUE(listed.is_object());
  ASSERT_EQ(listed["processes"].size(), 3u);
  EXPECT_EQ(listed["processes"][1]["name"], kFffd + "ff" + kFffd + "fe");
  EXPECT_FALSE(action_catalog::result_unreadable(listed));
  const auto garbage = action_catalog::result_to_json("process.list", "\x0a\xff\xff\xff\xff\x0f");
  ASSERT_TRUE(garbage.is_object());
  ASSERT_TRUE(action_catalog::result_unreadable(garbage));
  EXPECT_NE(action_catalog::result_unreadable(garbage)->find("could not be read"),
            std::string::npos);
}

}  // namespace
}  // namespace riposte
