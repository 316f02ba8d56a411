/* Undefines what dtype_params.h defined. */
#undef REAL
#undef ACC
#undef SUF
#undef EXP
#undef EXP_NONPOS
#undef VREAL
#undef VMASK
#undef VEXP_NONPOS
#undef RVREAL
#undef RVEXP_NONPOS
#undef FSM_DTYPE
