using MassTransit;
using MassTransit.Context;
using MassTransit.Logging;
using MassTransit.Middleware;
using MassTransit.Saga;

namespace FreeBind.Persistence.Sagas;

/// <summary>MassTransit's view of <see cref="SagaStore{TSaga}"/> while one message is consumed.</summary>
/// <typeparam name="TSaga">The saga instance type.</typeparam>
/// <typeparam name="TMessage">The consumed message type.</typeparam>
internal sealed class NpgsqlSagaRepositoryContext<TSaga, TMessage>(
    SagaStore<TSaga> store, ConsumeContext<TMessage> consumeContext, ISagaConsumeContextFactory<SagaStore<TSaga>, TSaga> factory)
    : ConsumeContextScope<TMessage>(consumeContext), SagaRepositoryContext<TSaga, TMessage>
    where TSaga : class, IStoredSaga
    where TMessage : class
{
    private ConsumeContext<TMessage> Consumed => this;

    public Task<SagaConsumeContext<TSaga, TMessage>> Add(TSaga instance) =>
        factory.CreateSagaConsumeContext(store, Consumed, instance, SagaConsumeContextMode.Add);

    public async Task<SagaConsumeContext<TSaga, TMessage>> Insert(TSaga instance)
    {
        try
        {
            await store.InsertAsync(instance, CancellationToken).ConfigureAwait(false);
            Consumed.LogInsert<TSaga, TMessage>(instance.CorrelationId);
            return await factory.CreateSagaConsumeContext(store, Consumed, instance, SagaConsumeContextMode.Insert).ConfigureAwait(false);
        }
        catch (ConcurrencyException e)
        {
            // The instance exists (or its key is held): MassTransit then loads the existing one.
            Consumed.LogInsertFault<TSaga, TMessage>(e, instance.CorrelationId);
            return default!;
        }
    }

    public async Task<SagaConsumeContext<TSaga, TMessage>> Load(Guid correlationId)
    {
        var instance = await store.LoadAsync(correlationId, CancellationToken).ConfigureAwait(false);
        return instance is null
            ? default!
            : await factory.CreateSagaConsumeContext(store, Consumed, instance, SagaConsumeContextMode.Load).ConfigureAwait(false);
    }

    public Task Save(SagaConsumeContext<TSaga> context) => store.InsertAsync(context.Saga, context.CancellationToken);

    public Task Update(SagaConsumeContext<TSaga> context) => store.UpdateAsync(context.Saga, context.CancellationToken);

    public Task Delete(SagaConsumeContext<TSaga> context) => store.DeleteAsync(context.Saga, context.CancellationToken);

    public Task Discard(SagaConsumeContext<TSaga> context) => Task.CompletedTask;

    public Task Undo(SagaConsumeContext<TSaga> context) => Task.CompletedTask;

    public Task<SagaConsumeContext<TSaga, T>> CreateSagaConsumeContext<T>(ConsumeContext<T> consumeContext, TSaga instance, SagaConsumeContextMode mode)
        where T : class =>
        factory.CreateSagaConsumeContext(store, consumeContext, instance, mode);
}

/// <summary>Loads instances outside a message (<see cref="ILoadSagaRepository{TSaga}"/>).</summary>
/// <typeparam name="TSaga">The saga instance type.</typeparam>
internal sealed class NpgsqlLoadSagaRepositoryContext<TSaga>(SagaStore<TSaga> store, CancellationToken cancellationToken)
    : BasePipeContext(cancellationToken), LoadSagaRepositoryContext<TSaga>
    where TSaga : class, IStoredSaga
{
    public async Task<TSaga> Load(Guid correlationId) =>
        (await store.LoadAsync(correlationId, CancellationToken).ConfigureAwait(false))!;
}
