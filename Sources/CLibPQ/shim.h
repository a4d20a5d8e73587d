#ifndef WMS_CLIBPQ_SHIM_H
#define WMS_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
