#include "controller/store/database.h"

#include <fmt/format.h>

namespace riposte::controller::sql {

Error Database::error(std::string_view what) const {
  return Error{fmt::format("database: {}: {}", what, last_error())};
}

Status Query::run() {
  const int rc = step();
  if (rc != kDone && rc != kRow) return Error{fmt::format("database: {}", db_->last_error())};
  return ok_status();
}

}  // namespace riposte::controller::sql
