/* The snippet's registers: snippets/common/m55m1.h (the M55M1 as published). */
#ifndef KEYGEN_REGS_H
#define KEYGEN_REGS_H

#include "m55m1.h"

#endif
