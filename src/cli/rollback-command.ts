export { rollbackCommand } from './operator-commands.js';
