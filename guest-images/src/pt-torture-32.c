/* pt-torture-32 - pt-torture in 2-level 32-bit paging (see pt-torture32.h). */
#include "pt-torture32.h"
