// Must not compile: platform/ has no networking and no wire format.
#include "protocol/tls.h"
