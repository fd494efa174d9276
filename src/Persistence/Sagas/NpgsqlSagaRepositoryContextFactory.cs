using MassTransit;
using MassTransit.Saga;

namespace FreeBind.Persistence.Sagas;

/// <summary>
/// MassTransit's seam for a saga store (<see cref="ISagaRepositoryContextFactory{TSaga}"/>), over
/// <see cref="SagaStore{TSaga}"/>: optimistic concurrency only, instances found by correlation id
/// only (queries by expression are not supported; correlate every event by id).
/// </summary>
/// <typeparam name="TSaga">The saga instance type.</typeparam>
public sealed class NpgsqlSagaRepositoryContextFactory<TSaga>(SagaStore<TSaga> store, ISagaConsumeContextFactory<SagaStore<TSaga>, TSaga> factory)
    : ISagaRepositoryContextFactory<TSaga>, ILoadSagaRepositoryContextFactory<TSaga>
    where TSaga : class, IStoredSaga
{
    /// <inheritdoc />
    public Task Send<T>(ConsumeContext<T> context, IPipe<SagaRepositoryContext<TSaga, T>> next)
        where T : class =>
        next.Send(new NpgsqlSagaRepositoryContext<TSaga, T>(store, context, factory));

    /// <inheritdoc />
    public Task SendQuery<T>(ConsumeContext<T> context, ISagaQuery<TSaga> query, IPipe<SagaRepositoryQueryContext<TSaga, T>> next)
        where T : class =>
        throw new NotSupportedException($"the Postgres saga store finds {typeof(TSaga).Name} by correlation id only; correlate {typeof(T).Name} by id");

    /// <inheritdoc />
    public Task<T> Execute<T>(Func<LoadSagaRepositoryContext<TSaga>, Task<T>> asyncMethod, CancellationToken cancellationToken = default)
        where T : class =>
        asyncMethod(new NpgsqlLoadSagaRepositoryContext<TSaga>(store, cancellationToken));

    /// <inheritdoc />
    public void Probe(ProbeContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Add("persistence", "postgres");
        context.Add("table", store.Table);
    }
}
