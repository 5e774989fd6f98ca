// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured;

/// <summary>
/// Computing one token mask needed more matcher work than <see cref="SchemaLimits.MaxMaskWork"/>. Thrown from
/// <see cref="JsonTokenConstraint.MaskLogits"/>; the engine then ends that sequence alone with an error, and the
/// constraint must not be used again.
/// </summary>
internal sealed class ConstraintBudgetExceededException : Exception
{
    /// <summary>Creates the exception for a budget of <paramref name="budget"/> work units.</summary>
    /// <param name="budget">The budget that was exceeded.</param>
    public ConstraintBudgetExceededException(long budget)
        : base($"The structured-output mask needed more than {budget} matcher steps for one token (limit MaxMaskWork); the schema is too ambiguous to enforce.")
    {
        Budget = budget;
    }

    /// <summary>The budget that was exceeded.</summary>
    public long Budget { get; }
}
