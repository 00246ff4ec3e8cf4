/**
 * The options of the commands that call a running syncline (--token, --ca, --cert, --key), apart
 * from the client that uses them (./api-client.ts): the command definitions load only commander.
 */
import { Option, type Command } from 'commander';

/** The option every client command takes. */
export const tokenOption = () => new Option('--token <token>', 'API token for a syncline whose API requires one (default: SYNCLINE_TOKEN)');

/** --token, --ca, --cert, --key on a command that calls a running syncline. */
export function withApiOptions(cmd: Command): Command {
  return cmd
    .addOption(tokenOption())
    .addOption(new Option('--ca <file>', 'PEM file of the CA that signed the HTTPS certificate of the running syncline (a private CA; default: SYNCLINE_API_CA, else the system CAs)'))
    .addOption(new Option('--cert <file>', 'PEM client certificate, for a syncline that requires one (observability.tls.clientCaFile; default: SYNCLINE_API_CERT); with --key'))
    .addOption(new Option('--key <file>', 'PEM private key of --cert (default: SYNCLINE_API_KEY)'));
}
