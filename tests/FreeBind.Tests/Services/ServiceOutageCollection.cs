namespace FreeBind.Tests.Services;

/// <summary>
/// Tests that stop a shared service (scripts/services.sh stop-postgres / stop-redis). xUnit runs
/// this collection alone, after every parallel test, so no other test sees the outage.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ServiceOutageCollection
{
    public const string Name = "service outages";
}
