export { historyCommand } from './operator-commands.js';
