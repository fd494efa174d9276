using MassTransit;

namespace FreeBind.Persistence.Sagas;

/// <summary>
/// A saga instance that <see cref="SagaStore{TSaga}"/> keeps in Postgres: its state name and an
/// optional exclusive key travel in their own columns (queried, constrained); the rest is jsonb.
/// </summary>
public interface IStoredSaga : ISagaVersion
{
    /// <summary>The state machine's current state name.</summary>
    string CurrentState { get; }

    /// <summary>
    /// A business key that at most one stored instance may hold at a time (unique index), or null.
    /// A re-embedding run holds its space while it is in progress, so a second run of the same
    /// space cannot be stored even when two starts race.
    /// </summary>
    string? ExclusiveKey { get; }
}
