// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Everything conf/ offers, for callers that want one include: the two configuration files
// (gazelle-mgr.conf for the manager, lstack.conf for each application), their key tables and the
// check behind gazelle-check-config.

#include "conf/check_config.h"
#include "conf/key_info.h"
#include "conf/lstack_config.h"
#include "conf/manager_config.h"
