// The raftkv command's stderr carries its own one-line errors; Node's DEP0123 ("Setting the TLS ServerName to
// an IP address is not permitted by RFC 6066") is not one of them. grpc-js sets the TLS server name to the
// dialled host, which for raftkv's HOST:PORT addresses is usually an IP (127.0.0.1:7101); the certificate is
// still checked against that IP (its subjectAltName), only the SNI extension is left out. This drops that one
// warning, in the CLI process only (the client library leaves process-wide settings alone); every other
// warning is emitted as before.
export function quietIpServernameWarning(): void {
  const emit = process.emitWarning.bind(process);
  const filtered = (warning: string | Error, ...rest: unknown[]): void => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: unknown }).code : rest[1];
    if (code === 'DEP0123') return;
    (emit as (w: string | Error, ...r: unknown[]) => void)(warning, ...rest);
  };
  process.emitWarning = filtered;
}
