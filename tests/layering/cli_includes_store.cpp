// Must not compile: the operator CLI is a client of the API and never opens the store.
#include "controller/store/sqlite_store.h"
