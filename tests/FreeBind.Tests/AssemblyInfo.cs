// Fault tests stop and start the shared Postgres and Redis; no other test may run meanwhile.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
