/* A shared object that is not a batchd plugin: it must be refused. */
int not_a_plugin(void);

int not_a_plugin(void)
{
	return 42;
}
