import * as path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BadgesImportStack } from '../lib/badges-import-stack';
import { loadConfig } from '../src/config/load';
import { ConfigError } from '../src/errors';

/** Context key naming the configuration file (`cdk synth -c badgesImport:config=path/to/config.json`). */
const CONFIG_CONTEXT = 'badgesImport:config';

const app = new App();
const configFile = path.resolve(String(app.node.tryGetContext(CONFIG_CONTEXT) ?? 'examples/config.json'));
let config;
try {
  config = loadConfig(configFile);
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
new BadgesImportStack(app, String(app.node.tryGetContext('badgesImport:stackName') ?? 'BadgesImport'), { config, configFile });
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
