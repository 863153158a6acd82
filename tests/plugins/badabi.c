/* A plugin built for an ABI this batchd does not have: it must be refused. */
#include <stddef.h>

#include "../../include/batchd.h"

static int run(void *state, struct batchd_task *task, const char *input, char **result)
{
	(void)state, (void)task, (void)input;
	*result = NULL;
	return BATCHD_OK;
}

static const struct batchd_handler handler = {
	.abi_version = BATCHD_ABI_VERSION + 98,
	.name = "badabi",
	.run = run,
};

const struct batchd_handler *batchd_handler_get(void)
{
	return &handler;
}
