using MassTransit;
using MassTransit.Configuration;
using MassTransit.Saga;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Npgsql;

namespace FreeBind.Persistence.Sagas;

/// <summary>Registers the Postgres saga store for a saga (MassTransit's EF, Dapper and Redis stores are not used).</summary>
public static class NpgsqlSagaRepositoryExtensions
{
    /// <summary>
    /// Stores <typeparamref name="TSaga"/> instances in <paramref name="table"/> through the process's
    /// <see cref="NpgsqlDataSource"/>, with optimistic concurrency. Also registers the
    /// <see cref="SagaStore{TSaga}"/> itself, for readers such as a status command.
    /// </summary>
    /// <param name="configurator">The saga's registration.</param>
    /// <param name="table">Table created by a migration (see 0004_reembedding_runs.sql for the shape).</param>
    /// <typeparam name="TSaga">The saga instance type.</typeparam>
    public static ISagaRegistrationConfigurator<TSaga> PostgresRepository<TSaga>(this ISagaRegistrationConfigurator<TSaga> configurator, string table)
        where TSaga : class, IStoredSaga
    {
        ArgumentNullException.ThrowIfNull(configurator);
        configurator.Repository(r =>
        {
            r.TryAddSingleton(sp => new SagaStore<TSaga>(sp.GetRequiredService<NpgsqlDataSource>(), table));
            r.RegisterLoadSagaRepository<TSaga, NpgsqlSagaRepositoryContextFactory<TSaga>>();
            r.RegisterSagaRepository<TSaga, SagaStore<TSaga>, SagaConsumeContextFactory<SagaStore<TSaga>, TSaga>,
                NpgsqlSagaRepositoryContextFactory<TSaga>>();
        });
        return configurator;
    }
}
