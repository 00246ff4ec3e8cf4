// The HTTP API for bench/targets.ts, in its own process (so it does not share the sink's CPU):
// answers every request 200 after reading its body and counts the changes it got (a JSON array: its
// length; anything else: one). GET /count answers the count. Prints its port on stdout.
import { createServer } from 'node:http';

let count = 0;
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/count') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count }));
      return;
    }
    const body = Buffer.concat(chunks).toString('utf8');
    if (body.startsWith('[')) count += JSON.parse(body).length;
    else count += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(String(server.address().port)));
