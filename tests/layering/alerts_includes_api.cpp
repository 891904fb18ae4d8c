// Must not compile: alerts/ sits below the API and does not link riposte_api.
#include "controller/api/router.h"
