// musicgen::Error lives in the public header so library users can catch it.
#pragma once

#include "musicgen/error.h"
