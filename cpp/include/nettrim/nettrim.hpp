// The nettrim engine: one include for C++ users (link nettrim::core).
#pragma once

#include "nettrim/backend.hpp"
#include "nettrim/errors.hpp"
#include "nettrim/hooks.hpp"
#include "nettrim/machine.hpp"
#include "nettrim/refit.hpp"
#include "nettrim/result.hpp"
#include "nettrim/settings.hpp"
#include "nettrim/solver.hpp"
#include "nettrim/statistics.hpp"
#include "nettrim/types.hpp"
#include "nettrim/version.hpp"
