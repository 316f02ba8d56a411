/* xent_template.h for float and double.  The includer defines ISA (the
 * suffix of the public names) and FSM_WIDE_ROWS (see dtype_params.h). */
#define FSM_DTYPE 32
#include "dtype_params.h"
#include "xent_template.h"
#include "dtype_params_end.h"

#define FSM_DTYPE 64
#include "dtype_params.h"
#include "xent_template.h"
#include "dtype_params_end.h"
