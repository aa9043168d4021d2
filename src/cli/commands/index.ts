import type { Command } from 'commander';
import { registerApply } from './apply.ts';
import { registerBackups } from './backups.ts';
import { registerCheck } from './check.ts';
import { registerDemo } from './demo.ts';
import { registerDryRun } from './dry-run.ts';
import { registerPlan } from './plan.ts';
import { registerRehearse } from './rehearse.ts';
import { registerRollback } from './rollback.ts';
import { registerReport } from './report.ts';
import { registerRunbook } from './runbook.ts';
import { registerStatus } from './status.ts';
import { registerVerify } from './verify.ts';
import { registerMonitor } from './monitor.ts';
import { registerCleanup } from './cleanup.ts';
import { registerControl } from './control.ts';
import { registerPrisma } from './prisma.ts';
import { registerInit } from './init.ts';

/** Each command registers itself; setExit records the command's exit code. */
export type RegisterCommand = (program: Command, setExit: (code: number) => void) => void;

export const COMMANDS: RegisterCommand[] = [
  registerDemo,
  registerInit,
  registerCheck,
  registerPlan,
  registerDryRun,
  registerRehearse,
  registerApply,
  registerRollback,
  registerStatus,
  registerControl,
  registerBackups,
  registerVerify,
  registerMonitor,
  registerCleanup,
  registerRunbook,
  registerReport,
  registerPrisma,
];
