import { Option } from 'commander';

/** `--registry <module>`, the job registry module a command loads instead of the config's. */
export function registryOption(description = 'job registry module (default: the demo jobs)'): Option {
  return new Option('--registry <module>', description);
}
