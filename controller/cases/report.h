#pragma once

// A case as a reviewer needs it: everything the controller recorded, gathered from the store and
// ordered in one timeline, so an incident can be reconstructed from its first event to its
// resolution and each action checked — which alert, validation and enrichment, confidence and
// why, every playbook step with its inputs/outputs and timings, approvals (who, when, why),
// actions with their signatures and results (simulated ones beside the real ones), evidence,
// notes, status changes. Rendered as JSON, Markdown or HTML (`riposte cases report`).
//
// Time to validate, contain and resolve are measured from the case's creation (its first alert's
// arrival) to the milestone; `case_stats` gives their mean and percentiles over a period.

#include <nlohmann/json.hpp>
#include <string>

#include "controller/store/store.h"

namespace riposte::controller {

// The case summary with its milestones and durations (`riposte cases list`, `cases show`).
nlohmann::json case_json(const CaseRecord& c);

// The whole record; errors "no case ID" when unknown.
Result<nlohmann::json> build_case_report(Store& store, const std::string& case_id);

std::string render_case_markdown(const nlohmann::json& report);
// A standalone page; every value recorded is escaped.
std::string render_case_html(const nlohmann::json& report);

// Cases created in [since_ms, until_ms]: counts by status and, per measure (validate, contain,
// resolve), count, mean, p50, p90, p95 and max in seconds over the cases that reached it.
Result<nlohmann::json> case_stats(Store& store, std::int64_t since_ms, std::int64_t until_ms);

}  // namespace riposte::controller
