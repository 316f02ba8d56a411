/* Undefines what dtype_params.h defined. */
#undef REAL
#undef ACC
#undef SUF
#undef EXP
#undef EXP_NONPOS
#undef VREAL
#undef VMASK
#undef VEXP_NONPOS
#undef VLOAD_FIRST
#undef VSTORE_FIRST
#undef RVREAL
#undef RVEXP_NONPOS
#undef RLOAD_FIRST
#undef RSTORE_FIRST
#undef RVW
#undef FSM_DTYPE
