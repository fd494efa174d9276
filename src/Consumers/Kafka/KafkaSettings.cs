using System.Reflection;
using Confluent.Kafka;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Kafka;

/// <summary>
/// Turns the pass-through sections into librdkafka settings, and guards them: properties the
/// worker's guarantees depend on cannot be overridden, unknown property names fail at start, and
/// secrets must come from the environment.
/// </summary>
public static class KafkaSettings
{
    // The worker stores offsets itself, after the work is durable; these would break at-least-once.
    private static readonly HashSet<string> Managed = new(StringComparer.Ordinal)
    {
        "bootstrap.servers", "group.id", "enable.auto.offset.store", "enable.auto.commit",
    };

    // Normalised names (lower case, no '.', '_' or '-') of the properties that hold secrets.
    private static readonly HashSet<string> Secrets = new(StringComparer.Ordinal)
    {
        "saslpassword", "sslkeypassword", "sslkeystorepassword", "sslkeypem", "sasloauthbearerclientsecret", "sasloauthbearerconfig",
        "sslcertificatepem", "sslcapem",
    };

    /// <summary>Applies a section's entries to a client config (librdkafka names as given, Confluent property names converted).</summary>
    /// <exception cref="ArgumentException">An entry names no Confluent property, or a value does not convert.</exception>
    public static void Apply(ClientConfig config, IReadOnlyDictionary<string, string> entries, string section)
    {
        foreach (var (key, value) in entries)
        {
            var name = LibrdkafkaName(config, key, section);
            if (Managed.Contains(name))
                throw new ArgumentException($"{section}:{key} is managed by the worker (use Kafka:BootstrapServers and Kafka:GroupId; offsets are stored only after the work is durable)");
            if (key.Contains('.', StringComparison.Ordinal))
            {
                config.Set(key, value);
                continue;
            }
            var property = config.GetType().GetProperty(key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase)!;
            var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            try
            {
                property.SetValue(config, type.IsEnum ? Enum.Parse(type, value, ignoreCase: true) : Convert.ChangeType(value, type, System.Globalization.CultureInfo.InvariantCulture));
            }
            catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException or OverflowException)
            {
                throw new ArgumentException($"{section}:{key}: '{(IsSecret(key) ? "***" : value)}' is not a valid {type.Name}", e);
            }
        }
    }

    /// <summary>Whether a setting holds a secret (by librdkafka or Confluent name).</summary>
    public static bool IsSecret(string key) => Secrets.Contains(Normalise(key));

    // A dotted key is a librdkafka name already; a Confluent property name maps to one through the
    // setter (ClientConfig stores every property under its librdkafka name).
    private static string LibrdkafkaName(ClientConfig config, string key, string section)
    {
        if (key.Contains('.', StringComparison.Ordinal)) return key;
        var property = config.GetType().GetProperty(key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
        if (property is null || !property.CanWrite)
            throw new ArgumentException($"{section}:{key} is not a Kafka client setting (give a librdkafka name such as sasl.mechanism, or a Confluent.Kafka property name such as SaslMechanism)");
        return Normalise(key) switch
        {
            "bootstrapservers" => "bootstrap.servers",
            "groupid" => "group.id",
            "enableautooffsetstore" => "enable.auto.offset.store",
            "enableautocommit" => "enable.auto.commit",
            _ => key,
        };
    }

    private static string Normalise(string key) => key.Replace(".", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal).Replace("-", "", StringComparison.Ordinal).ToLowerInvariant();

    /// <summary>Builds both clients' settings at start, so a pass-through setting that is unknown, managed by the worker, or too small for the content caps stops the start in one line.</summary>
    internal sealed class Buildable(IOptions<FreeBind.Consumers.Pipeline.Content.ContentOptions> content) : IValidateOptions<KafkaOptions>
    {
        public ValidateOptionsResult Validate(string? name, KafkaOptions options)
        {
            try
            {
                KafkaClients.ConsumerConfig(options, content.Value);
                KafkaClients.ProducerConfig(options, content.Value);
                return ValidateOptionsResult.Success;
            }
            catch (ArgumentException e)
            {
                return ValidateOptionsResult.Fail(e.Message);
            }
        }
    }

    /// <summary>Refuses secrets read from a settings file: they belong in the environment (or a secret store that sets it).</summary>
    internal sealed class SecretsFromEnvironment(IConfiguration configuration) : IValidateOptions<KafkaOptions>
    {
        public ValidateOptionsResult Validate(string? name, KafkaOptions options)
        {
            if (configuration is not IConfigurationRoot root) return ValidateOptionsResult.Success;
            var failures = new List<string>();
            foreach (var section in new[] { "Client", "Consumer", "Producer" })
            {
                foreach (var child in root.GetSection($"{KafkaOptions.Section}:{section}").GetChildren())
                {
                    if (!IsSecret(child.Key)) continue;
                    var source = root.Providers.Reverse().FirstOrDefault(p => p.TryGet(child.Path, out _));
                    if (source is FileConfigurationProvider file)
                        failures.Add($"{child.Path} is a secret and must come from the environment ({child.Path.Replace(":", "__", StringComparison.Ordinal)}), not from {file.Source.Path}");
                }
            }
            return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
        }
    }
}
