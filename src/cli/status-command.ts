export { statusCommand } from './operator-commands.js';
