/* pt-torture-pae - pt-torture in PAE paging, protected mode (see pt-torture32.h). */
#define PAE 1
#include "pt-torture32.h"
