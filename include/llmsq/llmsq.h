/* llmsq — umbrella header: includes every public module header. */
#ifndef LLMSQ_LLMSQ_H
#define LLMSQ_LLMSQ_H
#include "llmsq/status.h"
#include "llmsq/tensor.h"
#include "llmsq/store.h"
#include "llmsq/runtime.h"
#include "llmsq/model.h"
#include "llmsq/tokenizer.h"
#include "llmsq/formats.h"
#include "llmsq/quant.h"
#include "llmsq/prune.h"
#include "llmsq/calib.h"
#include "llmsq/eval.h"
#include "llmsq/speed.h"
#include "llmsq/backend.h"
#endif /* LLMSQ_LLMSQ_H */
