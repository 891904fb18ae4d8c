// Must not compile: the store depends on no subsystem above it.
#include "controller/alerts/intake.h"
