/* What backend-independent code (common/) sees of the cpu backend. */
#include "cpu/objects.h"
