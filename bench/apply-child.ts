// `belay apply` of the flagship exactly as the command line runs it (pre-flight, backup, decision, batches,
// verification), in a process of its own so that its peak memory is the command's alone. Its stdout is
// the CLI's --json lines (the run's typed events, then the result), then one line of its own with the
// exit code and the peak RSS (getrusage: the high-water mark of the whole process).
// Usage: node --import tsx bench/apply-child.ts <url> [more apply flags]
import { main } from '../src/cli/main.ts';
import { FLAGSHIP_DIR } from '../src/cli/commands/demo.ts';

const [url, ...flags] = process.argv.slice(2);
const exitCode = await main([process.argv[0]!, 'belay', '--json', '--db', url!, 'apply', FLAGSHIP_DIR, ...flags]);
process.stdout.write(`${JSON.stringify({ type: 'bench-child', exitCode, maxRssMb: process.resourceUsage().maxRSS / 1024 })}\n`);
process.exitCode = exitCode;
