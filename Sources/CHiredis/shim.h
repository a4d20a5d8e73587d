#ifndef WMS_CHIREDIS_SHIM_H
#define WMS_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
